"""Members of an uncompressed tar read in place: a file offset and a length, no extraction.

Shared by the tar forms of local images (``oci-archive:`` through
:mod:`.local`, ``docker-archive:`` through :mod:`.docker_archive`).  ``where``
is what errors name: the user's archive, also when the tar read is its
decompressed copy in scratch space.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Optional

from hpcbridge.errors import ImageError
from hpcbridge.images.fetch.image import LocalLayer
from hpcbridge.images.fetch.manifest import Descriptor, sha256_digest
from hpcbridge.images.protocols import Layer


class TarStore:
    """Members of an uncompressed tar, read in place (no extraction)."""

    def __init__(self, path: Path, *, where: Optional[str] = None) -> None:
        self.path = path
        self.where = where or str(path)
        self.members: dict[str, tarfile.TarInfo] = {}
        try:
            with tarfile.open(path, "r:") as tf:
                for ti in tf.getmembers():
                    name = os.path.normpath(ti.name).lstrip("/")
                    if ti.isfile():
                        self.members[name] = ti
                    elif ti.islnk() or ti.issym():
                        target = (
                            ti.linkname
                            if ti.islnk()
                            else os.path.join(os.path.dirname(name), ti.linkname)
                        )
                        linked = self.members.get(os.path.normpath(target).lstrip("/"))
                        if linked is not None:
                            self.members[name] = linked
        except (tarfile.TarError, OSError) as exc:
            raise ImageError(
                f"cannot read the archive {self.where}: {exc}",
                "check that it is a tar file (docker save, skopeo copy, buildah push)",
            ) from exc

    def has(self, name: str) -> bool:
        return name in self.members

    def _member(self, name: str, what: str) -> tarfile.TarInfo:
        ti = self.members.get(name)
        if ti is None:
            raise ImageError(f"{self.where}: {what} ({name}) is missing from the archive")
        return ti

    def read_name(self, name: str, limit: int = 16 << 20) -> bytes:
        ti = self._member(name, name)
        if ti.size > limit:
            raise ImageError(f"{self.where}: {name} is implausibly large ({ti.size} bytes)")
        with open(self.path, "rb") as fh:
            fh.seek(ti.offset_data)
            return fh.read(ti.size)

    def read(self, digest: str, limit: int = 16 << 20) -> bytes:
        algo, _, hexpart = digest.partition(":")
        data = self.read_name(f"blobs/{algo}/{hexpart}", limit)
        if sha256_digest(data) != digest:
            raise ImageError(f"{self.where}: blob {digest} is corrupt (digest mismatch)")
        return data

    def member_layer(
        self, name: str, digest: str, media_type: str, verify: bool = True
    ) -> LocalLayer:
        ti = self._member(name, f"layer {digest}")
        return LocalLayer(
            digest, media_type, ti.size, self.path, ti.offset_data, verify, self.where
        )

    def layer(self, desc: Descriptor) -> Layer:
        algo, _, hexpart = desc.digest.partition(":")
        return self.member_layer(f"blobs/{algo}/{hexpart}", desc.digest, desc.media_type)
