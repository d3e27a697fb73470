"""Local image forms: OCI layout directories, oci-archive and docker-archive tarballs.

Blobs are read in place (a tar member is a file offset and a length), never
extracted; only a compressed archive is decompressed once into scratch space.
They yield an :class:`~hpcbridge.images.fetch.image.Image`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from hpcbridge.errors import ImageError
from hpcbridge.images.cache import temp_name
from hpcbridge.images.fetch.image import Image, LocalLayer
from hpcbridge.images.fetch.manifest import (
    OCI_LAYER,
    Descriptor,
    Index,
    canonical_manifest,
    kind_of,
    parse_index,
    parse_manifest,
    select_platform,
    sha256_digest,
)
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


class TarStore:
    """Members of an uncompressed tar, read in place (no extraction)."""

    def __init__(self, path: Path, prefix: str = "") -> None:
        self.path = path
        self.where = str(path)
        self.prefix = prefix
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
            raise ImageError(f"cannot read the archive {path}: {exc}") from exc

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


def _select_in_layout(
    index: Index, tag: Optional[str], platform: Platform, where: str
) -> Descriptor:
    entries = list(index.manifests)
    if tag is not None:
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


def load_layout(store: BlobStore, ref_text: str, tag: Optional[str], platform: Platform) -> Image:
    """An image from an OCI layout (directory or tar), following nested indexes."""
    where = store.where
    if not store.has("index.json"):
        raise ImageError(f"{where} is not an OCI image layout (no index.json)")
    index = parse_index(store.read_name("index.json"), f"{where}/index.json")
    desc = _select_in_layout(index, tag, platform, where)
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


# --- docker-archive ----------------------------------------------------------------------


def _sniff(store: TarStore, name: str) -> bytes:
    ti = store.members[name]
    with open(store.path, "rb") as fh:
        fh.seek(ti.offset_data)
        return fh.read(min(ti.size, 8))


def _layer_media_type(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return OCI_LAYER + "+gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return OCI_LAYER + "+zstd"
    return OCI_LAYER


def _hash_member(store: TarStore, name: str) -> str:
    ti = store.members[name]
    h = hashlib.sha256()
    with open(store.path, "rb") as fh:
        fh.seek(ti.offset_data)
        left = ti.size
        while left:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                raise ImageError(f"{store.where}: {name} is truncated")
            h.update(chunk)
            left -= len(chunk)
    return "sha256:" + h.hexdigest()


def load_docker_archive(path: Path, ref_text: str) -> Image:
    store = TarStore(path)
    where = str(path)
    if not store.has("manifest.json"):
        if store.has("index.json"):
            raise ImageError(
                f"{where} is an OCI archive, not a docker archive", f"use oci-archive:{path}"
            )
        raise ImageError(f"{where} is not a docker-archive (no manifest.json)")
    try:
        entries = json.loads(store.read_name("manifest.json"))
    except ValueError as exc:
        raise ImageError(f"{where}: manifest.json is not valid JSON") from exc
    if not isinstance(entries, list) or not entries:
        raise ImageError(f"{where}: manifest.json lists no image")
    if len(entries) > 1:
        tags = [t for e in entries for t in (e.get("RepoTags") or [])]
        raise ImageError(
            f"{where} holds {len(entries)} images; hpcbridge converts archives of one image",
            f"save one image per archive (tags: {', '.join(tags) or 'none'})",
        )
    entry = entries[0]
    config_name = os.path.normpath(str(entry.get("Config", ""))).lstrip("/")
    config = store.read_name(config_name)
    config_digest = sha256_digest(config)
    try:
        diff_ids = list(json.loads(config)["rootfs"]["diff_ids"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"{where}: the image config has no rootfs.diff_ids") from exc
    names = [os.path.normpath(str(n)).lstrip("/") for n in entry.get("Layers") or []]
    if len(names) != len(diff_ids):
        raise ImageError(f"{where}: {len(names)} layers but the config lists {len(diff_ids)}")
    layers: list[Layer] = []
    for name, diff_id in zip(names, diff_ids):
        if name not in store.members:
            raise ImageError(f"{where}: layer {name} is missing from the archive")
        media = _layer_media_type(_sniff(store, name))
        stem = os.path.basename(name).split(".")[0]
        if media == OCI_LAYER:
            digest = str(diff_id)  # an uncompressed layer's digest is its diff_id
        elif name.startswith("blobs/sha256/") or len(stem) == 64:
            digest = "sha256:" + (name.rsplit("/", 1)[1] if name.startswith("blobs/") else stem)
        else:
            digest = _hash_member(store, name)
        layers.append(store.member_layer(name, digest, media))
    manifest = canonical_manifest(config, [(layer.digest, layer.size) for layer in layers])
    return Image(sha256_digest(manifest), config_digest, config, layers, ref_text)


# --- entry point for local references ------------------------------------------------------


def archive_compression(path: Path) -> str:
    """How an archive file is compressed (``gzip``, ``zstd``, ``bzip2``, ``xz``...) or ``none``."""
    try:
        with open(path, "rb") as fh:
            return detect_compression(fh.read(8))
    except OSError:
        return "none"


def load_local(ref: ArchiveRef, platform: Platform, scratch: Optional[Path] = None) -> Image:
    """Open a docker-archive, oci or oci-archive reference (metadata only; cheap)."""
    path = Path(ref.path).expanduser()
    tag = ref.tag
    if not path.exists() and tag and Path(f"{ref.path}:{tag}").exists():
        path, tag = Path(f"{ref.path}:{tag}"), None  # a path that contains a colon
    if not path.exists():
        raise ImageError(
            f"{ref.kind} path {str(path)!r} does not exist", f"check the path in {ref}"
        )
    if ref.kind == "oci":
        if not path.is_dir():
            raise ImageError(
                f"oci:{path} is not a directory", f"for a tar file use oci-archive:{path}"
            )
        return load_layout(DirStore(path), str(ref), tag, platform)
    if not path.is_file():
        raise ImageError(f"{ref.kind}:{path} is not a file", f"for a directory use oci:{path}")
    closers: list[Callable[[], None]] = []
    if archive_compression(path) != "none":
        path = _decompress_to(path, scratch)
        closers.append(lambda p=path: _unlink(p))  # type: ignore[misc]
    image = (
        load_docker_archive(path, str(ref))
        if ref.kind == "docker-archive"
        else load_layout(TarStore(path), str(ref), tag, platform)
    )
    image.closers.extend(closers)
    return image


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
