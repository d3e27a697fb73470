"""Progress of a conversion on a terminal: each layer's download, unpacking, squash, total.

:class:`ConvertProgress` is the model (pure: events and a clock in, text lines
out; unit-tested); :class:`TerminalProgress` draws it on stderr as a block of
lines rewritten in place at most ten times a second, and leaves one summary
line when the conversion ends.  :func:`progress_for` gives a display only when
stderr is a terminal and neither ``--quiet`` nor ``--json`` was asked for:
scripts and logs see nothing.

Why not ``rich`` or ``tqdm``: the display needs several concurrent downloads, a
squash stage and a summary, which is ~150 lines on top of plain ANSI escapes;
a dependency for it would be installed on every login node for little.  click
(already a dependency) provides the terminal test and styling.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Callable, Optional

if TYPE_CHECKING:  # annotations only: a cached convert (~0.1 s) does not import it
    from hpcbridge.images.progress import LayerEvent

#: Rates are averaged over this many seconds.
RATE_WINDOW = 3.0
#: Redraw at most this often (seconds).
REDRAW = 0.1


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def duration(seconds: float) -> str:
    s = int(seconds)
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


@dataclass
class Counter:
    """Bytes (or items) done of a total, with a recent rate."""

    done: int = 0
    total: int = 0
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    first: Optional[float] = None  # when the first event came
    finished: Optional[float] = None  # when done reached total

    def update(self, done: int, total: int, now: float) -> None:
        self.done, self.total = done, total or self.total
        if self.first is None:
            self.first = now
        if self.total and self.done >= self.total and self.finished is None:
            self.finished = now
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > RATE_WINDOW:
            self.samples.popleft()

    @property
    def complete(self) -> bool:
        return self.finished is not None

    def spent(self, now: float) -> float:
        return ((self.finished or now) - self.first) if self.first is not None else 0.0

    def rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0

    def text(self) -> str:
        if self.complete:
            return f"{size(self.done)} in {self.spent(0.0):.1f} s"
        if self.total:
            pct = 100.0 * self.done / self.total if self.total else 0.0
            return f"{size(self.done)} / {size(self.total)} {pct:3.0f}%"
        return size(self.done)


@dataclass
class ConvertProgress:
    """What a conversion has done so far (see the module docstring)."""

    started: float
    stage: str = ""
    download: Counter = field(default_factory=Counter)
    squash: Counter = field(default_factory=Counter)
    extract: tuple[int, int] = (0, 0)
    layers: dict[int, tuple[str, Counter]] = field(default_factory=dict)
    squash_started: Optional[float] = None
    squash_ended: Optional[float] = None

    def on_stage(self, stage: str, done: int, total: int, now: float) -> None:
        self.stage = stage
        if stage == "download":
            self.download.update(done, total, now)
        elif stage == "extract":
            self.extract = (done, total)
        elif stage == "squash":
            if self.squash_started is None:
                self.squash_started = now
            if total == 1 and self.squash.total > 1:
                pass  # the start/end markers (0/1, 1/1) of a build that also counts bytes
            else:
                self.squash.update(done, total, now)
            if total and done >= total and self.squash_ended is None:
                self.squash_ended = now
        elif stage == "sif" and self.squash_ended is None:
            self.squash_ended = now

    def on_layer(self, event: LayerEvent, now: float) -> None:
        if event.stage != "download":
            return
        _, counter = self.layers.setdefault(event.index, (event.digest, Counter()))
        counter.update(event.done, event.total, now)

    def lines(self, now: float) -> list[str]:
        out: list[str] = []
        count = len(self.layers)
        for index in sorted(self.layers):
            digest, c = self.layers[index]
            if c.complete:
                continue  # finished layers leave the block
            short = digest.split(":", 1)[-1][:12]
            out.append(f"  layer {index + 1} {short}  {c.text()}  {size(c.rate())}/s".rstrip())
        if self.download.complete:
            out.append(f"download {self.download.text()}")
        elif self.download.first is not None:
            finished = sum(1 for _, c in self.layers.values() if c.complete)
            layers = f"  ({finished} of {count} layers done)" if count else ""
            out.append(f"download {self.download.text()}  {size(self.download.rate())}/s{layers}")
        done, total = self.extract
        if total and self.squash_started is None:
            out.append(f"unpack   {done}/{total} layers")
        if self.squash_started is not None:
            rate = "" if self.squash.complete else f"  {size(self.squash.rate())}/s"
            out.append(f"squash   {self.squash.text()}{rate}")
        if self.stage == "wait":
            out.append("waiting for another process converting the same image")
        elif self.stage == "apptainer":
            out.append("apptainer build running")
        out.append(f"elapsed  {duration(now - self.started)}")
        return out

    def summary(self, now: float) -> str:
        spent = now - self.started
        parts = []
        if self.download.done:
            took = self.download.spent(now)
            rate = f" ({size(self.download.done / took)}/s)" if took > 0 else ""
            parts.append(f"downloaded {size(self.download.done)} in {took:.1f} s{rate}")
        if self.squash_started is not None:
            end = self.squash_ended or now
            parts.append(f"squashed {size(self.squash.done)} in {end - self.squash_started:.1f} s")
        return f"converted in {spent:.1f} s" + (": " + ", ".join(parts) if parts else "")


class TerminalProgress:
    """Draws a :class:`ConvertProgress` on a terminal; also the ``progress`` hook itself."""

    def __init__(self, stream: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.clock = clock
        self.model = ConvertProgress(clock())
        self.lock = threading.Lock()
        self.drawn = 0  # lines of the block now on the screen
        self.last = 0.0
        self.active = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self.lock:
            changed = stage != self.model.stage
            self.model.on_stage(stage, done, total, self.clock())
            self.active = True
            self._draw(force=changed)

    def layer(self, event: LayerEvent) -> None:
        with self.lock:
            self.model.on_layer(event, self.clock())
            self.active = True
            self._draw(force=False)

    def _draw(self, force: bool) -> None:
        now = self.clock()
        if not force and now - self.last < REDRAW:
            return
        self.last = now
        import shutil  # only on a terminal: ~2 ms of every command otherwise

        width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
        lines = [line[:width] for line in self.model.lines(now)]
        self._erase()
        self.stream.write("".join(f"{line}\n" for line in lines))
        self.stream.flush()
        self.drawn = len(lines)

    def _erase(self) -> None:
        if self.drawn:
            self.stream.write(f"\033[{self.drawn}F\033[J")  # up N lines, clear to the end

    def finish(self, ok: bool = True) -> None:
        """Replace the block by one summary line (nothing when no conversion ran)."""
        with self.lock:
            if not self.active:
                return
            self._erase()
            if ok:
                self.stream.write(self.model.summary(self.clock()) + "\n")
            self.stream.flush()
            self.drawn = 0


def progress_for(quiet: bool, as_json: bool = False) -> Optional[TerminalProgress]:
    """A display on stderr when it is a terminal and neither --quiet nor --json is given."""
    if quiet or as_json:
        return None
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):
        tty = False
    return TerminalProgress(sys.stderr) if tty else None
