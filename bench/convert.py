#!/usr/bin/env python3
"""bench/convert: conversion time, memory and disk against `apptainer build`, on the testbed.

Two images: ``debian-python`` (the testbed's) and ``large`` (bench/bigimage.py: about
2.3 GB unpacked, 2 GiB of incompressible files and 40,000 small files, built by the
bench and pushed to the testbed registry).  For each image, in every round and in an
order that rotates between rounds (so the machine's noise hits every contender alike),
cold conversions from the registry as the testbed's non-root user:

* ``gzip``: ``hpcbridge convert docker://REF --compression gzip`` into an empty cache;
* ``zstd``: the same with ``--compression zstd``;
* ``before``: the gzip conversion of hpcbridge as it was before issue 15 (the package at
  ``--before`` extracted with ``git archive``, run by the same Python);
* ``apptainer``: ``apptainer build --disable-cache --no-https out.sif docker://REF@DIGEST``
  (the testbed's real Apptainer 1.4.5) with an empty ``APPTAINER_TMPDIR``.

Each run (in fresh directories under the work directory, removed after it): wall time;
peak RSS of the process (``VmHWM`` of hpcbridge's own process; for ``apptainer`` the
largest single process of its tree, the wrapper's bwrap being idle); peak RSS of the
whole process tree (the largest sum of ``VmRSS`` over the tree seen at one 20 ms
sample).  After the rounds, one more run of each contender on a loop-mounted ext4
filesystem that holds only that run's cache, tmp dir and output gives its disk peak
(the most bytes used, sampled every 0.1 s; not timed: the loop device's own copying
would slow the runs that write most).  Then
``apptainer exec SIF true``-like start-up of the gzip and zstd SIFs of each image (a
static program; ``--exec-repeat`` interleaved runs), and the warm path of debian-python:
``hpcbridge convert`` of the cached tag (one HEAD) and digest against ``apptainer pull
--force`` with a warm Apptainer cache (``--warm-repeat`` interleaved pairs).

Results go to ``--json`` and, with ``--docs``, the convert block of docs/benchmarks.md.

    .venv/bin/python bench/convert.py [--repeat 3] [--images debian-python,large] [--docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import bigimage  # noqa: E402
from bench.convert_report import markdown  # noqa: E402
from bench.docblock import replace_block  # noqa: E402
from bench.procwatch import Watched, watch  # noqa: E402
from tests.testbed.api import Testbed  # noqa: E402
from tests.testbed.users import as_user_argv  # noqa: E402

HPCBRIDGE = str(REPO / ".venv" / "bin" / "hpcbridge")
PYTHON = str(REPO / ".venv" / "bin" / "python")
BEFORE = "736c20f"  # the last commit before issue 15's conversion changes
CONTENDERS = ("gzip", "zstd", "before", "apptainer")
MiB = 1 << 20


class Plain:
    """Fresh directories on the work directory's own filesystem (timed runs: no sampling)."""

    def __init__(self, root: Path, owner: tuple[int, int]) -> None:
        self.mount = root
        self.owner = owner
        root.mkdir(parents=True, exist_ok=True)
        os.chown(root, *owner)

    def fresh(self, name: str) -> Path:
        d = self.mount / name
        d.mkdir()
        os.chown(d, *self.owner)
        return d

    def clear(self) -> None:
        for p in self.mount.iterdir():
            shutil.rmtree(p)


class Disk(Plain):
    """A loop-mounted ext4 filesystem holding one run's files at a time (exact disk use)."""

    def __init__(self, root: Path, size_gib: int, owner: tuple[int, int]) -> None:
        self.image = root / "disk.img"
        self.mount = root / "disk"
        self.owner = owner
        self.mount.mkdir(parents=True, exist_ok=True)
        if os.path.ismount(self.mount):
            subprocess.run(["umount", str(self.mount)], check=True)
        self.image.unlink(missing_ok=True)
        subprocess.run(["truncate", "-s", f"{size_gib}G", str(self.image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], check=True)
        subprocess.run(["mount", "-o", "loop", str(self.image), str(self.mount)], check=True)
        os.chown(self.mount, *owner)
        self.base = self.used()

    def used(self) -> int:
        st = os.statvfs(self.mount)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def clear(self) -> None:
        for p in self.mount.iterdir():
            if p.name != "lost+found":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        self.base = self.used()

    def close(self) -> None:
        subprocess.run(["umount", str(self.mount)], check=False)
        self.image.unlink(missing_ok=True)


def prepare_before(work: Path) -> Path:
    """The hpcbridge package as of BEFORE, readable by the test user."""
    dest = work / f"before-{BEFORE}"
    if not (dest / "hpcbridge" / "cli" / "__init__.py").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", BEFORE, "hpcbridge"], cwd=REPO, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for p in [dest, *dest.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return dest


def run(
    tb: Testbed,
    argv: Sequence[str],
    env: Optional[dict[str, str]] = None,
    disk: Optional[Disk] = None,
) -> Watched:
    merged = {**tb.env, **(env or {})}
    probe = (lambda: disk.used() - disk.base) if disk is not None else None
    w = watch(as_user_argv(tb.user, list(argv)), env=merged, cwd=str(tb.user.home), disk=probe)
    if w.returncode != 0:
        raise SystemExit(f"failed ({w.returncode}): {' '.join(argv)}\n{w.stderr[-3000:]}")
    return w


def timed(tb: Testbed, argv: Sequence[str], env: Optional[dict[str, str]] = None) -> float:
    """Wall time of a short command, without the sampler (its 20 ms polling would round it)."""
    full = as_user_argv(tb.user, list(argv))
    merged = {**tb.env, **(env or {})}
    start = time.perf_counter()
    done = subprocess.run(
        full, env=merged, cwd=str(tb.user.home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stderr[-3000:]!r}")
    return seconds


def cold(
    tb: Testbed, place: Plain | Disk, who: str, ref: str, pinned: str, before: Path
) -> Watched:
    """One cold conversion by ``who`` into fresh directories of ``place`` (a Disk: sampled)."""
    d = place.fresh(who)
    disk = place if isinstance(place, Disk) else None
    env = {"HPCBRIDGE_STATE_DIR": str(d / "state")}
    if who == "apptainer":
        tmp = d / "tmp"
        tmp.mkdir()
        os.chown(tmp, tb.user.uid, tb.user.gid)
        argv = [str(tb.apptainer), "build", "--disable-cache", "--no-https", str(d / "out.sif")]
        return run(tb, [*argv, pinned], {"APPTAINER_TMPDIR": str(tmp)}, disk)
    comp = "zstd" if who == "zstd" else "gzip"
    args = ["convert", ref, "--cache-dir", str(d / "cache"), "--compression", comp]
    if who == "before":
        env["PYTHONPATH"] = str(before)
        return run(tb, [PYTHON, "-c", "from hpcbridge.cli import main; main()", *args], env, disk)
    return run(tb, [HPCBRIDGE, *args], env, disk)


def sample(w: Watched, who: str) -> dict[str, float]:
    # apptainer runs under the testbed wrapper's bwrap (idle): its largest process counts
    proc = w.child_peak if who == "apptainer" else w.process_peak
    return {
        "seconds": round(w.seconds, 3),
        "process_mib": round(proc / MiB, 1),
        "tree_mib": round(w.tree_peak / MiB, 1),
        "child_mib": round(w.child_peak / MiB, 1),
    }


def keep_sif(place: Plain, who: str, dest: Path) -> None:
    """Move the SIF a conversion made out of the run's directory (for the start-up runs)."""
    found = list((place.mount / who).rglob("*.sif"))
    if found:
        shutil.move(str(found[0]), dest)
        os.chmod(dest, 0o755)


def rounds(
    tb: Testbed, args: argparse.Namespace, images: dict[str, dict[str, str]], work: Path
) -> Any:
    """Timed rounds on the work directory's filesystem, then one run of each on the loop
    filesystem for the disk peak (its loop device costs CPU of its own: not timed)."""
    before = prepare_before(work)
    owner = (tb.user.uid, tb.user.gid)
    plain = Plain(work / "runs", owner)
    samples: dict[str, dict[str, list[dict[str, float]]]] = {n: {} for n in images}
    sifs = work / "sifs"
    sifs.mkdir(exist_ok=True)
    for r in range(args.repeat):
        for name, img in images.items():
            for who in CONTENDERS[r % 4 :] + CONTENDERS[: r % 4]:
                w = cold(tb, plain, who, img["ref"], img["pinned"], before)
                samples[name].setdefault(who, []).append(sample(w, who))
                if who in ("gzip", "zstd"):
                    keep_sif(plain, who, sifs / f"{name}-{who}.sif")
                plain.clear()
                print(f"round {r + 1} {name} {who}: {samples[name][who][-1]}", flush=True)
    disks: dict[str, dict[str, float]] = {n: {} for n in images}
    disk = Disk(work, args.disk_gib, owner)
    try:
        for name, img in images.items():
            for who in CONTENDERS:
                w = cold(tb, disk, who, img["ref"], img["pinned"], before)
                disks[name][who] = round(w.disk_peak / MiB, 1)
                disk.clear()
                print(f"disk {name} {who}: {disks[name][who]} MiB", flush=True)
    finally:
        disk.close()
    return samples, disks, sifs


def exec_startup(tb: Testbed, sifs: Path, images: dict[str, dict[str, str]], n: int) -> Any:
    out: dict[str, dict[str, list[float]]] = {}
    for name, img in images.items():
        out[name] = {"gzip": [], "zstd": []}
        for _ in range(n):
            for comp in ("gzip", "zstd"):
                sif = sifs / f"{name}-{comp}.sif"
                seconds = timed(tb, [str(tb.apptainer), "exec", str(sif), img["command"]])
                out[name][comp].append(round(seconds, 4))
    return out


def warm(tb: Testbed, img: dict[str, str], work: Path, n: int) -> dict[str, list[float]]:
    cache = work / "warm-cache"
    state = {"HPCBRIDGE_STATE_DIR": str(work / "warm-state")}
    for d in (cache, work / "warm-state", work / "apptainer-cache"):
        d.mkdir(exist_ok=True)
        os.chown(d, tb.user.uid, tb.user.gid)
    tag, digest = img["ref"], img["pinned"]
    timed(
        tb, [HPCBRIDGE, "convert", tag, "--cache-dir", str(cache), "--compression", "zstd"], state
    )
    pull_env = {"APPTAINER_CACHEDIR": str(work / "apptainer-cache")}
    pull = [str(tb.apptainer), "pull", "--force", "--no-https", str(work / "pulled.sif"), tag]
    timed(tb, pull, pull_env)  # fills Apptainer's cache
    out: dict[str, list[float]] = {"tag": [], "digest": [], "apptainer_pull": []}
    for _ in range(n):
        for key, ref in (("tag", tag), ("digest", digest)):
            seconds = timed(tb, [HPCBRIDGE, "convert", ref, "--cache-dir", str(cache)], state)
            out[key].append(round(seconds, 4))
        out["apptainer_pull"].append(round(timed(tb, pull, pull_env), 4))
    return out


def images_to_run(tb: Testbed, wanted: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name in wanted:
        if name == "large":
            params = bigimage.Params()
            _, digest, ref = bigimage.ensure(params)
            cmd, unpacked = (
                "/bin/hello",
                "about 2.3 GB unpacked: 2 GiB incompressible, 40,000 small files",
            )
        else:
            info = tb.image(name)
            ref, digest, cmd, unpacked = info.ref, info.digest, "/bin/true", "the testbed's image"
        repo = ref.rsplit(":", 1)[0]
        out[name] = {
            "ref": f"docker://{ref}",
            "pinned": f"docker://{repo}@{digest}",
            "digest": digest,
            "command": cmd,
            "about": unpacked,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="debian-python,large")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--exec-repeat", type=int, default=5)
    ap.add_argument("--warm-repeat", type=int, default=10)
    ap.add_argument("--disk-gib", type=int, default=24, help="size of the loop filesystem")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "convert.json")
    ap.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    args = ap.parse_args()

    tb = Testbed.from_state_dir()
    work = bigimage.WORK / "convert-run"
    if os.path.ismount(work / "disk"):  # left mounted by an interrupted run
        subprocess.run(["umount", str(work / "disk")], check=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.chown(work, tb.user.uid, tb.user.gid)
    images = images_to_run(tb, args.images.split(","))
    load = os.getloadavg()
    samples, disks, sifs = rounds(tb, args, images, work)
    startup = exec_startup(tb, sifs, images, args.exec_repeat)
    warm_runs = (
        warm(tb, images["debian-python"], work, args.warm_repeat)
        if "debian-python" in images
        else {}
    )
    result = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_before": load},
        "before": BEFORE,
        "repeat": args.repeat,
        "exec_repeat": args.exec_repeat,
        "warm_repeat": args.warm_repeat,
        "images": images,
        "cold": samples,
        "disk_mib": disks,
        "exec": startup,
        "warm": warm_runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    print(md)
    if args.docs:
        replace_block(REPO / "docs" / "benchmarks.md", "convert", md)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
