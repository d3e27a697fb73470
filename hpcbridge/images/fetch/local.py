"""Local image forms: OCI layout directories, oci-archive and docker-archive tarballs.

Blobs are read in place (a tar member is a file offset and a length, see
:mod:`.tarstore`), never extracted; only a compressed archive is decompressed
once into scratch space, and that copy is removed again when the image is
closed or fails to load (errors name the user's archive, never the copy).
Selectors follow skopeo: ``oci:DIR:TAG`` (the tag may hold ``:``),
``docker-archive:FILE:REPO:TAG``, ``...:@N`` for the N-th image (see
:func:`hpcbridge.images.refs.parse_ref`).  They yield an
:class:`~hpcbridge.images.fetch.image.Image`.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any, Optional, Protocol

from hpcbridge.errors import ImageError
from hpcbridge.images.cache import temp_name
from hpcbridge.images.fetch.docker_archive import load_docker_archive
from hpcbridge.images.fetch.image import Image, LocalLayer
from hpcbridge.images.fetch.manifest import (
    Descriptor,
    Index,
    kind_of,
    parse_index,
    parse_manifest,
    select_platform,
    sha256_digest,
)
from hpcbridge.images.fetch.tarstore import TarStore
from hpcbridge.images.layers.decompress import detect_compression
from hpcbridge.images.protocols import Layer
from hpcbridge.images.refs import ArchiveRef, Platform

_CHUNK = 1 << 20
REF_NAME = "org.opencontainers.image.ref.name"


# --- OCI layouts: a directory or a tar of one ------------------------------------------


class BlobStore(Protocol):
    where: str

    def read(self, digest: str, limit: int = 16 << 20) -> bytes: ...

    def layer(self, desc: Descriptor) -> Layer: ...

    def has(self, name: str) -> bool: ...

    def read_name(self, name: str) -> bytes: ...


class DirStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = str(root)

    def _path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        return self.root / "blobs" / algo / hexpart

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()

    def read_name(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except OSError as exc:
            raise ImageError(f"{self.where}: cannot read {name}: {exc.strerror}") from exc

    def read(self, digest: str, limit: int = 16 << 20) -> bytes:
        path = self._path(digest)
        try:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        except OSError as exc:
            raise ImageError(f"{self.where}: blob {digest} is missing ({exc.strerror})") from exc
        if len(data) > limit or sha256_digest(data) != digest:
            raise ImageError(f"{self.where}: blob {digest} is corrupt (digest mismatch)")
        return data

    def layer(self, desc: Descriptor) -> Layer:
        path = self._path(desc.digest)
        if not path.is_file():
            raise ImageError(f"{self.where}: layer blob {desc.digest} is missing")
        return LocalLayer(desc.digest, desc.media_type, desc.size, path, where=self.where)


def _select_in_layout(
    index: Index,
    tag: Optional[str],
    platform: Platform,
    where: str,
    position: Optional[int] = None,
) -> Descriptor:
    entries = list(index.manifests)
    if position is not None:
        if not 0 <= position < len(entries):
            raise ImageError(
                f"{where} holds {len(entries)} image(s); there is no @{position}",
                f"use @0 to @{len(entries) - 1}, or name a tag",
            )
        entries = [entries[position]]
    elif tag is not None:
        named = [d for d in entries if (d.annotations or {}).get(REF_NAME) in (tag,)]
        if not named:
            named = [
                d for d in entries if (d.annotations or {}).get(REF_NAME, "").endswith(":" + tag)
            ]
        if not named:
            tags = sorted({(d.annotations or {}).get(REF_NAME, "") for d in entries} - {""})
            raise ImageError(
                f"{where} has no image tagged {tag!r}",
                f"tags in it: {', '.join(tags) or 'none'}",
            )
        entries = named
    if len(entries) == 1:
        return entries[0]
    if all(d.platform for d in entries):
        return select_platform(Index(index.media_type, tuple(entries)), platform, where)
    tags = sorted({(d.annotations or {}).get(REF_NAME, "") for d in entries} - {""})
    raise ImageError(
        f"{where} holds {len(entries)} images",
        f"name one with :TAG (tags: {', '.join(tags) or 'none'})",
    )


def load_layout(
    store: BlobStore,
    ref_text: str,
    tag: Optional[str],
    platform: Platform,
    position: Optional[int] = None,
) -> Image:
    """An image from an OCI layout (directory or tar), following nested indexes."""
    where = store.where
    if not store.has("index.json"):
        raise ImageError(f"{where} is not an OCI image layout (no index.json)")
    index = parse_index(store.read_name("index.json"), f"{where}/index.json")
    desc = _select_in_layout(index, tag, platform, where, position)
    for _ in range(4):
        data = store.read(desc.digest)
        if kind_of(data, desc.media_type, f"{where} {desc.digest}") == "manifest":
            return _image_from_manifest(store, data, desc.digest, ref_text)
        desc = _select_in_layout(parse_index(data, where), None, platform, where)
    raise ImageError(f"{where}: indexes nested too deeply")


def _image_from_manifest(store: BlobStore, data: bytes, digest: str, ref_text: str) -> Image:
    manifest = parse_manifest(data, f"{store.where} {digest}")
    config = store.read(manifest.config.digest)
    layers = [store.layer(d) for d in manifest.layers]
    return Image(digest, manifest.config.digest, config, layers, ref_text)


# --- entry point for local references ------------------------------------------------------


def archive_compression(path: Path) -> str:
    """How an archive file is compressed (``gzip``, ``zstd``, ``bzip2``, ``xz``...) or ``none``."""
    try:
        with open(path, "rb") as fh:
            return detect_compression(fh.read(8))
    except OSError:
        return "none"


def local_path(ref: ArchiveRef) -> tuple[Path, Optional[str]]:
    """The path and tag of ``ref``; a path holding ``:`` is found on the file system
    (``oci:a:b:v1`` is the directory ``a:b`` and tag ``v1`` when ``a`` does not exist)."""
    path, tag = Path(ref.path).expanduser(), ref.tag
    rest = tag.split(":") if tag and not path.exists() else []
    for i in range(1, len(rest) + 1):
        candidate = Path(f"{ref.path}:{':'.join(rest[:i])}").expanduser()
        if candidate.exists():
            return candidate, ":".join(rest[i:]) or None
    return path, tag


def load_local(ref: ArchiveRef, platform: Platform, scratch: Optional[Path] = None) -> Image:
    """Open a docker-archive, oci or oci-archive reference (metadata only; cheap)."""
    path, tag = local_path(ref)
    if not path.exists():
        raise ImageError(
            f"{ref.kind} path {str(path)!r} does not exist", f"check the path in {ref}"
        )
    if ref.kind == "oci":
        if not path.is_dir():
            raise ImageError(
                f"oci:{path} is not a directory", f"for a tar file use oci-archive:{path}"
            )
        return load_layout(DirStore(path), str(ref), tag, platform, ref.index)
    if not path.is_file():
        raise ImageError(f"{ref.kind}:{path} is not a file", f"for a directory use oci:{path}")
    if archive_compression(path) == "none":
        return _load_tar(ref, path, path, tag, platform)
    copy = _decompress_to(path, scratch)
    try:
        image = _load_tar(ref, copy, path, tag, platform)
    except BaseException:
        _unlink(copy)  # nothing is left behind by an archive that fails to load
        raise
    image.closers.append(lambda: _unlink(copy))
    return image


def _load_tar(
    ref: ArchiveRef, path: Path, where: Path, tag: Optional[str], platform: Platform
) -> Image:
    if ref.kind == "docker-archive":
        return load_docker_archive(path, str(ref), tag=tag, index=ref.index, where=str(where))
    return load_layout(TarStore(path, where=str(where)), str(ref), tag, platform, ref.index)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _open_compressed(path: Path, kind: str) -> Any:
    # Caller closes: used in a with statement.
    if kind == "gzip":
        import gzip

        return gzip.open(path, "rb")
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
    if kind == "bzip2":
        import bz2

        return bz2.open(path, "rb")
    if kind == "xz":
        import lzma

        return lzma.open(path, "rb")
    raise ImageError(f"{path} is {kind}-compressed", "decompress it first")


def _decompress_to(path: Path, scratch: Optional[Path]) -> Path:
    """Compressed archives cannot be read in place: decompress once into ``scratch``."""
    if scratch is None:
        raise ImageError(f"{path} is compressed", "decompress it first (gunzip/zstd -d)")
    kind = archive_compression(path)
    out = scratch / temp_name(f"archive-{path.name}")
    try:
        with _open_compressed(path, kind) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
    except BaseException as exc:
        _unlink(out)
        if isinstance(exc, (OSError, EOFError, ValueError)) and not isinstance(
            exc, FileNotFoundError
        ):
            raise ImageError(f"cannot decompress {path}: {exc}", "the archive is corrupt") from exc
        raise
    return out
