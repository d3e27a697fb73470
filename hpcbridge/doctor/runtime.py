"""The container runtime: which one is installed, its version, and where it should be (pure).

Three situations a user meets, told apart:

* **a login node without a runtime**: many sites install Apptainer only on the
  compute nodes.  ``convert``, ``render`` and ``submit`` need none on the login
  node, so this is a warning that says how to check a compute node
  (``srun ... hpcbridge doctor``); the user-namespace and FUSE checks, which are
  about running containers, are skipped with it;
* **no runtime inside a job** (``SLURM_JOB_ID`` set: a compute node): jobs cannot
  run there, a failure;
* **a broken runtime**: the executable is there but ``--version`` fails or hangs,
  a failure.

The flavour is read from ``--version``: ``apptainer version 1.4.5`` is Apptainer,
``singularity-ce version 4.1.2`` SingularityCE (``runtime.flavor = "singularity"``),
``singularity version 3.8.7`` the Singularity that preceded both.  When the
configured executable is missing but the other flavour is installed, the finding
names it and the ``runtime.flavor`` (and ``runtime.executable``) to set.
"""

from __future__ import annotations

import re
from typing import Optional

from hpcbridge.doctor.facts import RuntimeFacts
from hpcbridge.doctor.findings import Finding, fail, ok, warn

_VERSION_RE = re.compile(
    r"(apptainer|singularity-ce|singularity)\s+version\s+v?(\d+)\.(\d+)(?:\.(\d+))?", re.I
)
#: ``--version`` product -> (what to call it, the runtime.flavor that drives it)
PRODUCTS = {
    "apptainer": ("Apptainer", "apptainer"),
    "singularity-ce": ("SingularityCE", "singularity"),
    "singularity": ("Singularity", "singularity"),
}
#: Oldest versions with rootless SIF mounts (squashfuse).
MINIMUM = {"apptainer": (1, 1, 0), "singularity": (3, 9, 0)}
COMPUTE_CHECK = "srun -N1 -n1 -t 5 hpcbridge doctor (add -p PARTITION for a given partition)"


def parse_runtime_version(text: str) -> Optional[tuple[str, tuple[int, int, int]]]:
    """``("apptainer", (1, 4, 5))`` from ``apptainer version 1.4.5-1``; the first item is the
    ``runtime.flavor`` that drives it (SingularityCE and Singularity: ``singularity``)."""
    found = identify(text)
    return (found[1], found[2]) if found else None


def identify(text: str) -> Optional[tuple[str, str, tuple[int, int, int]]]:
    """(product name, runtime.flavor, version) from a ``--version`` line, or None."""
    m = _VERSION_RE.search(text)
    if not m:
        return None
    product, flavor = PRODUCTS[m.group(1).lower()]
    return product, flavor, (int(m.group(2)), int(m.group(3)), int(m.group(4) or 0))


def runtime_missing(rt: RuntimeFacts) -> bool:
    """No runtime here at all (the checks of running containers do not apply)."""
    return rt.path is None


def check_runtime(rt: RuntimeFacts) -> list[Finding]:
    if rt.path is None:
        return [_missing(rt)]
    if rt.error:
        return [
            fail(
                "runtime",
                f"{rt.path} is installed but broken: `{rt.path} --version` failed: {rt.error}",
                "check the installation (or the module providing it) with the site admins",
            )
        ]
    found = identify(rt.version_output)
    if found is None:
        return [
            warn(
                "runtime",
                f"cannot read the version from {rt.version_output!r} ({rt.path})",
                "set runtime.version in your config",
            )
        ]
    return _versions(rt, *found)


def _versions(
    rt: RuntimeFacts, product: str, flavor: str, version: tuple[int, int, int]
) -> list[Finding]:
    text = ".".join(map(str, version))
    out: list[Finding] = []
    if flavor != rt.flavor:
        out.append(
            warn(
                "runtime",
                f"runtime.flavor = {rt.flavor!r} but {rt.path} is {product} {text}",
                f'set runtime.flavor = "{flavor}"',
            )
        )
    if rt.configured_version and not text.startswith(rt.configured_version.lstrip("v")):
        out.append(
            warn(
                "runtime",
                f"runtime.version = {rt.configured_version!r} but {rt.path} reports {text}",
                f'set runtime.version = "{text}" (or fix the module loaded)',
            )
        )
    minimum = MINIMUM[flavor]
    if version < minimum:
        out.append(
            warn(
                "runtime",
                f"{product} {text} is older than {'.'.join(map(str, minimum))}: "
                "no rootless SIF mounts (squashfuse)",
                "ask the site for a newer runtime",
            )
        )
    if not out:
        out.append(ok("runtime", f"{product} {text} ({rt.path}; runtime.flavor = {flavor!r})"))
    return out


def _missing(rt: RuntimeFacts) -> Finding:
    what = f"{rt.flavor} ({rt.executable!r}, runtime.executable) is not on this node's PATH"
    for path, version_line in rt.others:
        found = identify(version_line)
        if found is None:
            continue
        product, flavor, version = found
        text = ".".join(map(str, version))
        fix = f'set runtime.flavor = "{flavor}" and runtime.executable = "{path}"'
        message = f"{what}, but {path} is {product} {text}"
        return fail("runtime", message, fix) if rt.in_job else warn("runtime", message, fix)
    if rt.in_job:
        return fail(
            "runtime",
            f"{what}, and this is a compute node (inside job {rt.in_job}): jobs cannot run here",
            "load the site's runtime module (runtime.modules) or set runtime.executable",
        )
    return warn(
        "runtime",
        f"{what}: fine on a login node where the site installs it on compute nodes only "
        "(convert, render and submit need none here); the user-namespace and FUSE "
        "checks are skipped",
        f"check a compute node: {COMPUTE_CHECK}",
    )
