"""The progress hook of a conversion: what a display (status line, preview, GUI) listens to.

Every entry point (:func:`hpcbridge.images.convert.convert`, ``hpcbridge.api.convert``)
takes ``progress``: a callable ``progress(stage, done, total)`` that hears

==========  ===============================================  ==========================
stage       done / total                                     when
==========  ===============================================  ==========================
wait        0 / 0                                            another process converts
                                                             the same digest
download    bytes / bytes of all layers (resumed bytes       registry layers arriving
            count as done)
extract     layers applied / layers                          first pass: planning the tree
squash      file bytes fed to mksquashfs / bytes to feed     second pass (0 / 1 at the
                                                             start, 1 / 1 at the end
                                                             of a directory build)
sif         1 / 1                                            the SIF header is written
apptainer   0 / 1, 1 / 1                                     the apptainer backend runs
==========  ===============================================  ==========================

If the object also has a method ``layer(event)``, it hears every layer on its
own as :class:`LayerEvent` values (bytes downloaded, unpacked in the first
pass, streamed to mksquashfs in the second).  :class:`Reporter` is what the
conversion code calls (from several threads: it serialises the calls); it
throttles nothing, a display decides how often it redraws.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

__all__ = ["LayerEvent", "Progress", "Reporter"]

#: ``progress(stage, done, total)``
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LayerEvent:
    """One layer's progress: ``stage`` is ``download``, ``unpack`` or ``stream``.

    ``done``/``total`` are bytes of that layer (``total`` 0: not known, e.g. the
    decompressed size of a layer while it is first unpacked).
    """

    index: int
    digest: str
    stage: str
    done: int
    total: int


class Reporter:
    """Calls ``progress(stage, done, total)`` and, if it has one, its ``layer(event)``."""

    def __init__(self, progress: Optional[Progress]) -> None:
        self._progress = progress
        self._layer: Optional[Callable[[LayerEvent], None]] = getattr(progress, "layer", None)
        self._lock = threading.Lock()  # downloads and decompression report from threads
        self._bytes: dict[tuple[str, int], int] = {}

    def __bool__(self) -> bool:
        return self._progress is not None

    def stage(self, stage: str, done: int, total: int) -> None:
        if self._progress is not None:
            with self._lock:
                self._progress(stage, done, total)

    def layer_bytes(self, stage: str, index: int, digest: str, n: int, total: int) -> int:
        """Add ``n`` bytes to layer ``index``'s count for ``stage``; returns the new count."""
        with self._lock:
            key = (stage, index)
            done = self._bytes.get(key, 0) + n
            self._bytes[key] = done
            if self._layer is not None:
                self._layer(LayerEvent(index, digest, stage, done, total))
        return done
