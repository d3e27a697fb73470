"""The job's image: runs here at all, and which MPI it carries (pure)."""

from __future__ import annotations

import re
from typing import Optional

from hpcbridge.doctor.facts import ImageFacts
from hpcbridge.doctor.findings import Finding, fail, ok

#: A shell script run inside the image: MPI libraries and tools it contains.
MPI_PROBE = (
    "for d in /usr/lib /usr/lib64 /usr/local/lib /opt; do "
    '[ -d "$d" ] && find "$d" -maxdepth 5 \\( -name "libmpi*.so*" -o -name "libmpich*.so*" '
    '-o -name "libopen-pal.so*" \\) 2>/dev/null; done; exit 0'
)
_OPENMPI = re.compile(r"libopen-pal\.so|libmpi\.so\.(40|20)(\.|$)")
_MPICH = re.compile(r"libmpich\.so|libmpi\.so\.12(\.|$)")


def image_flavors(image: Optional[ImageFacts]) -> Optional[set[str]]:
    """MPI families found in the image; None when the image was not looked into."""
    if image is None or not image.exec_ok:
        return None
    found: set[str] = set()
    for lib in image.mpi_libs:
        name = lib.rsplit("/", 1)[-1]
        if _OPENMPI.search(name):
            found.add("openmpi")
        elif _MPICH.search(name):
            found.add("mpich")
    return found


def check_image(image: Optional[ImageFacts]) -> list[Finding]:
    if image is None:
        return []
    if image.sif is None:
        return [
            ok(
                "image",
                f"{image.ref} is not converted here yet ({image.error}); submit converts it once "
                f"(or run: hpcbridge convert {image.ref})",
            )
        ]
    if image.exec_ok is False:
        return [
            fail(
                "image",
                f"{image.runtime} exec of {image.sif} failed: {image.exec_error}",
                "fix the runtime findings above (user namespaces, fuse) or ask the site admins",
            )
        ]
    if image.exec_ok is None:
        why = image.exec_error or "not run"
        return [ok("image", f"{image.ref} is converted ({image.sif}); test run skipped: {why}")]
    took = f" in {image.exec_seconds:.1f} s" if image.exec_seconds is not None else ""
    return [ok("image", f"{image.ref} ({image.digest}) runs here: {image.runtime} exec{took}")]
