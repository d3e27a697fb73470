"""Checks of the login node itself: rootless capability, cache and tmp dirs (pure).

The runtime itself is checked by :mod:`hpcbridge.doctor.runtime`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Optional

from hpcbridge.doctor.facts import DirFacts, FuseFacts, KernelFacts, QuotaFacts, RuntimeFacts
from hpcbridge.doctor.findings import Finding, fail, ok, warn

GIB = 1024**3
FREE_FAIL = 1 * GIB  # below this a conversion of any real image fails
FREE_WARN = 10 * GIB  # below this large images (CUDA, ML stacks) will not fit
NETWORK_FS = (
    "nfs",
    "nfs4",
    "lustre",
    "gpfs",
    "beegfs",
    "cifs",
    "smb3",
    "ceph",
    "glusterfs",
    "panfs",
    "fuse.sshfs",
)


def check_userns(k: KernelFacts, rt: RuntimeFacts) -> list[Finding]:
    problems = []
    if k.max_user_namespaces is not None and k.max_user_namespaces <= 0:
        problems.append("user.max_user_namespaces = 0")
    if k.unprivileged_userns_clone == 0:
        problems.append("kernel.unprivileged_userns_clone = 0")
    if k.apparmor_restrict_userns == 1:
        problems.append("kernel.apparmor_restrict_unprivileged_userns = 1")
    if not problems:
        n = k.max_user_namespaces
        return [ok("userns", f"unprivileged user namespaces allowed (max {n})")]
    what = ", ".join(problems)
    if rt.suid_starter:
        return [ok("userns", f"{what}, but the runtime has a setuid starter")]
    return [
        fail(
            "userns",
            f"unprivileged user namespaces are disabled ({what}) and the runtime is not setuid",
            "ask the admins to enable user namespaces (sysctl) or install the setuid runtime",
        )
    ]


def check_fuse(f: FuseFacts, rt: RuntimeFacts) -> list[Finding]:
    out: list[Finding] = []
    mode = f"mode {f.mode:04o}" if f.mode is not None else "mode unknown"
    if not f.exists or not f.is_char_device:
        out.append(
            warn(
                "fuse",
                f"{f.device} is missing: SIFs are unpacked to a temporary sandbox at every run "
                "(slow, uses tmp space)",
                "ask the admins to load the fuse module",
            )
        )
    elif not f.usable and not rt.suid_starter and f.squashfuse is not None:
        # Verified with Apptainer 1.4.5: squashfuse_ll is tried and fails, no fallback.
        out.append(
            fail(
                "fuse",
                f"{f.device} is not readable and writable by you ({mode}): {f.squashfuse} "
                "cannot mount SIFs, so `apptainer exec` of a SIF fails",
                f"ask the admins for mode 0666 on {f.device}",
            )
        )
    elif not f.usable and not rt.suid_starter:
        out.append(
            warn(
                "fuse",
                f"{f.device} is not readable and writable by you ({mode}): SIFs are unpacked "
                "to a temporary sandbox at every run (slow, uses tmp space)",
                f"ask the admins for mode 0666 on {f.device}",
            )
        )
    elif f.squashfuse is None and not rt.suid_starter:
        out.append(
            warn(
                "fuse",
                "neither squashfuse_ll nor squashfuse found: SIFs cannot be mounted rootless",
                "install squashfuse (or the runtime package that bundles it)",
            )
        )
    else:
        tool = f.squashfuse or "setuid starter"
        out.append(ok("fuse", f"{f.device} usable ({mode}), SIF mounts via {tool}"))
    return out


def check_dirs(dirs: Sequence[DirFacts]) -> list[Finding]:
    out: list[Finding] = []
    for d in dirs:
        out += check_dir(d)
    cache = next((d for d in dirs if d.role == "cache"), None)
    tmp = next((d for d in dirs if d.role == "tmp"), None)
    if (
        cache is not None
        and tmp is not None
        and cache.device is not None
        and tmp.device is not None
        and cache.device != tmp.device
    ):
        out.append(
            warn(
                "tmp-dir",
                f"{tmp.path} and the cache {cache.path} are on different filesystems: "
                "publishing a SIF is a copy, not an atomic rename",
                "set cache.tmp_dir to a directory on the cache's filesystem (or leave it unset)",
            )
        )
    return out


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"


def check_dir(d: DirFacts) -> list[Finding]:
    check = f"{d.role}-dir"
    where = f"{d.config_key} = {d.path} (from {d.source})"
    fix_dir = f"set {d.config_key} to a writable directory on a local or parallel filesystem"
    if not d.exists:
        return [fail(check, f"{where} does not exist and cannot be created: {d.error}", fix_dir)]
    if d.error:
        return [fail(check, f"{where}: {d.error}", fix_dir)]
    out: list[Finding] = []
    if d.excl_ok is False:
        out.append(
            fail(
                check,
                f"{where}: O_EXCL file creation is not exclusive on {d.fstype}",
                "put the cache on a filesystem with working O_EXCL (NFSv3+ or local)",
            )
        )
    if d.rename_ok is False:
        out.append(
            fail(
                check,
                f"{where}: rename() over an existing file does not replace it on {d.fstype}",
                fix_dir,
            )
        )
    if d.free_bytes is not None:
        free = _size(d.free_bytes)
        if d.free_bytes < FREE_FAIL:
            out.append(
                fail(check, f"{where}: only {free} free on {d.mountpoint}", fix_dir + " with space")
            )
        elif d.free_bytes < FREE_WARN:
            out.append(
                warn(
                    check,
                    f"{where}: {free} free on {d.mountpoint}; large images need more",
                    "free some space (hpcbridge images prune) or move the directory",
                )
            )
    if d.quota is not None:
        out += _check_quota(check, where, d)
    if d.role == "tmp" and d.fstype in NETWORK_FS:
        out.append(
            warn(
                check,
                f"{where} is on {d.fstype}: unpacking and squashing there is slow",
                "set cache.tmp_dir to local disk only if the cache is local too; else accept",
            )
        )
    if not out:
        created = ", created" if d.created else ""
        free = _size(d.free_bytes) if d.free_bytes is not None else "unknown"
        out.append(
            ok(
                check,
                f"{d.path} on {d.fstype or 'unknown fs'} ({d.mountpoint}), {free} free, "
                f"O_EXCL and atomic rename work{created}",
            )
        )
    return out


def _check_quota(check: str, where: str, d: DirFacts) -> list[Finding]:
    q = d.quota
    assert q is not None
    limit = min((x for x in (q.soft_kib, q.hard_kib) if x), default=None)
    if limit is None:
        return []
    left = (limit - q.used_kib) * 1024
    text = f"{where}: {q.source} leaves {_size(max(left, 0))} of {_size(limit * 1024)}"
    if left < FREE_FAIL:
        return [fail(check, text, "free quota (hpcbridge images prune) or use a group cache")]
    if left < FREE_WARN:
        return [warn(check, text, "free quota (hpcbridge images prune) or use a group cache")]
    return []


def parse_quota(stdout: str, device: str) -> Optional[QuotaFacts]:
    """Blocks used/soft/hard (KiB) for ``device`` from ``quota -w -p -v`` output."""
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == device:
            nums = [re.sub(r"\*$", "", p) for p in parts[1:4]]
            if all(n.isdigit() for n in nums):
                used, soft, hard = (int(n) for n in nums)
                return QuotaFacts("quota", used, soft or None, hard or None)
    return None


def parse_lfs_quota(stdout: str) -> Optional[QuotaFacts]:
    """``lfs quota -q -u USER MOUNT``: ``MOUNT used quota limit grace files ...``."""
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            nums = [re.sub(r"\*$", "", p) for p in parts[1:4]]
            if all(n.isdigit() for n in nums):
                used, soft, hard = (int(n) for n in nums)
                return QuotaFacts("lfs quota", used, soft or None, hard or None)
    return None
