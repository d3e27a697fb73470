"""Image references: parse what a user types into a typed, normalised value.

Pure: no file system or network access.  Accepted forms::

    docker://[registry/]repo[:tag|@sha256:<hex>]   (a bare ``repo:tag`` means the same)
    docker-archive:PATH                              (``docker save`` / ``skopeo`` tarball)
    oci:DIR[:tag]                                    (OCI image layout directory)
    oci-archive:PATH[:tag]                           (tar of an OCI image layout)
    PATH                                             (a local SIF or squashfs image file)

A local image file is passed through and run as it is: a SIF, or a bare squashfs
(Singularity 2 ``.simg`` images and enroot ``.sqsh`` files are squashfs; Apptainer
runs them directly).  What names one: :func:`is_local_image_path` (a path: starts
with ``/``, ``./``, ``../`` or ``~``, or ends in :data:`LOCAL_IMAGE_SUFFIXES`);
callers that can look at the file system also treat any existing file as one (a
local file is never taken for a Docker Hub name).  What it holds is decided by its
content, not its name: :func:`image_file_format` reads the magic numbers.

Docker Hub names are normalised like Docker does: ``busybox`` is
``docker.io/library/busybox:latest`` and is fetched from ``registry-1.docker.io``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

from hpcbridge.errors import InputError

ACCEPTED_FORMS = (
    "docker://[registry/]repo[:tag|@sha256:<hex>], docker-archive:PATH, oci:DIR[:tag], "
    "oci-archive:PATH[:tag] or the path of a SIF or squashfs image file"
)
#: File names taken as local image files even without a leading ``/`` or ``./``.
LOCAL_IMAGE_SUFFIXES = (".sif", ".simg", ".sqsh", ".squashfs", ".img")
#: Magic numbers: SIF (``SIF_MAGIC`` at byte 32) and squashfs (``hsqs`` little-endian
#: at byte 0; ``sqsh`` is the big-endian form).  Bytes :func:`image_file_format` needs.
SIF_MAGIC = (32, b"SIF_MAGIC")
SQUASHFS_MAGICS = ((0, b"hsqs"), (0, b"sqsh"))
MAGIC_BYTES = 64
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.xz")

#: ``(os, architecture, variant)``, e.g. ``("linux", "arm64", "v8")``.
Platform = tuple[str, str, Optional[str]]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
#: An OCI layout's ref.name as skopeo accepts it: a tag, or a name with ':' and '/'.
_LAYOUT_TAG_RE = re.compile(r"^[A-Za-z0-9._-]+(?:[:/][A-Za-z0-9._-]+)*$")
_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_HOST_RE = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$"
)


@dataclass(frozen=True)
class RegistryRef:
    """``docker://registry/repository[:tag][@digest]`` after normalisation."""

    registry: str  # as named, e.g. "docker.io", "ghcr.io", "127.0.0.1:5000"
    repository: str  # e.g. "library/busybox"
    tag: Optional[str]  # None when only a digest was given
    digest: Optional[str]  # "sha256:<hex>" when pinned
    implicit_scheme: bool = False  # the user typed no "docker://"

    kind = "docker"

    @property
    def api_host(self) -> str:
        """The host[:port] that serves the Registry v2 API."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def is_loopback(self) -> bool:
        return is_loopback_host(self.api_host)

    def __str__(self) -> str:
        text = f"docker://{self.name}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class ArchiveRef:
    """A local image: ``docker-archive:``, ``oci:`` or ``oci-archive:``."""

    kind: str  # "docker-archive" | "oci" | "oci-archive"
    path: str
    tag: Optional[str] = None  # oci: the ref.name (may hold ':'); docker-archive: repo:tag
    index: Optional[int] = None  # ``@N``: the N-th image of the archive (0-based)

    def __str__(self) -> str:
        selector = f"@{self.index}" if self.index is not None else self.tag
        return f"{self.kind}:{self.path}" + (f":{selector}" if selector else "")


@dataclass(frozen=True)
class SifRef:
    """A local image file (SIF or squashfs, see :func:`image_file_format`), passed
    through unchanged."""

    path: str

    kind = "sif"

    def __str__(self) -> str:
        return self.path


ImageRef = Union[RegistryRef, ArchiveRef, SifRef]
#: Another name of :class:`SifRef`: any local image file, SIF or squashfs.
LocalImageRef = SifRef


def is_local_image_path(text: str) -> bool:
    """Whether ``text`` names a local image file by its form: a path (``/``, ``./``,
    ``../``, ``~``) or a name ending in :data:`LOCAL_IMAGE_SUFFIXES`."""
    value = text.strip()
    if not value or "://" in value or value.startswith(("docker-archive:", "oci:", "oci-archive:")):
        return False
    return value.startswith(("/", "./", "../", "~")) or value.lower().endswith(LOCAL_IMAGE_SUFFIXES)


def image_file_format(head: bytes) -> Optional[str]:
    """``"sif"`` or ``"squashfs"`` from the first :data:`MAGIC_BYTES` of a file; None
    when it is neither (an ext3 image, a tarball, text...)."""
    offset, magic = SIF_MAGIC
    if head[offset : offset + len(magic)] == magic:
        return "sif"
    for offset, magic in SQUASHFS_MAGICS:
        if head[offset : offset + len(magic)] == magic:
            return "squashfs"
    return None


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.x.y.z`` and ``[::1]`` (with or without a port)."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    name = name.lower()
    if name in ("localhost", "::1") or name.endswith(".localhost"):
        return True
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() for p in parts)


def _bad(value: str, why: str) -> InputError:
    return InputError(
        f"invalid image reference {value!r}: {why}", f"accepted forms: {ACCEPTED_FORMS}"
    )


def parse_ref(text: str) -> ImageRef:
    """Parse an image reference; raise :class:`InputError` naming the value otherwise."""
    value = text.strip()
    if not value:
        raise _bad(text, "it is empty")
    if value.startswith("docker://"):
        return parse_docker(value[len("docker://") :], original=text)
    for kind in ("docker-archive", "oci-archive", "oci"):
        if value.startswith(kind + ":"):
            return _parse_local(kind, value[len(kind) + 1 :], text)
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", value)
    if scheme:
        raise _bad(text, f"the scheme {scheme.group(1)!r}:// is not supported")
    if value in (".", ".."):
        raise _bad(text, "a directory is no image: for an OCI layout write oci:DIR")
    if is_local_image_path(value) and value.lower().endswith(_ARCHIVE_SUFFIXES):
        raise _bad(
            text,
            "a local path needs its format: docker-archive:PATH or oci-archive:PATH for a "
            "tarball (a SIF or squashfs image file is used as it is)",
        )
    if is_local_image_path(value):
        return SifRef(value)
    return parse_docker(value, original=text, implicit=True)


def _parse_local(kind: str, rest: str, original: str) -> ArchiveRef:
    """``PATH[:SELECTOR]`` split at the first ``:`` as skopeo does: the selector is a
    tag (oci, oci-archive; it may hold ``:`` and ``/``), a ``repo:tag`` reference
    (docker-archive) or ``@N``, the N-th image.  A path holding ``:`` is found by
    :func:`hpcbridge.images.fetch.local.load_local`, which looks at the file system."""
    path, sep, selector = rest.partition(":")
    if not path:
        raise _bad(original, f"{kind}: needs a path")
    if not sep:
        return ArchiveRef(kind, path)
    if not selector:
        raise _bad(original, f"nothing after the ':' of {kind}:{path}: (a tag, or @N)")
    if re.fullmatch(r"@[0-9]+", selector):
        return ArchiveRef(kind, path, index=int(selector[1:]))
    if selector.startswith("@"):
        raise _bad(original, f"{selector!r} is not an image index (@0, @1, ...)")
    if kind == "docker-archive":
        named = parse_docker(selector, original=original)
        if named.digest:
            raise _bad(original, "a docker-archive image is named by repo:tag or @N, not a digest")
        return ArchiveRef(kind, path, f"{named.name}:{named.tag}")
    if not _LAYOUT_TAG_RE.match(selector):
        raise _bad(
            original, f"{selector!r} is not a valid tag (letters, digits, '.', '_', '-', ':', '/')"
        )
    return ArchiveRef(kind, path, selector)


def parse_docker(
    text: str, *, original: Optional[str] = None, implicit: bool = False
) -> RegistryRef:
    """Parse ``[registry/]repo[:tag][@digest]`` (without ``docker://``)."""
    shown = original if original is not None else text
    rest = text
    digest: Optional[str] = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise _bad(shown, f"{digest!r} is not a digest of the form sha256:<64 hex digits>")
    tag: Optional[str] = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise _bad(shown, f"{tag!r} is not a valid tag (letters, digits, '_', '.', '-')")
    if not rest:
        raise _bad(shown, "the repository name is missing")
    parts = rest.split("/")
    first = parts[0]
    if len(parts) > 1 and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, parts[1:]
        if not _HOST_RE.match(registry):
            raise _bad(shown, f"{registry!r} is not a valid registry host[:port]")
        port = registry.rsplit(":", 1)[1] if re.search(r":[0-9]+$", registry) else ""
        if port and not 0 < int(port) <= 65535:
            raise _bad(shown, f"port {port} of {registry!r} is out of range (1-65535)")
    else:
        registry, path = DOCKER_HUB, parts
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    for component in path:
        if not _COMPONENT_RE.match(component):
            raise _bad(
                shown,
                f"{component!r} is not a valid repository component "
                "(lowercase letters, digits and single '.', '_' or '-' separators)",
            )
    if registry == DOCKER_HUB and len(path) == 1:
        path = ["library", *path]
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return RegistryRef(registry, "/".join(path), tag, digest, implicit)


def parse_platform(text: str) -> Platform:
    """``os/arch[/variant]`` -> (os, arch, variant)."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(re.match(r"^[a-z0-9_.-]+$", p) for p in parts):
        raise InputError(
            f"invalid platform {text!r}",
            "use os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8",
        )
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None
