#!/usr/bin/env python3
"""bench/convert: native conversion against `apptainer build`, plain mksquashfs and
`apptainer pull` from a warm cache, on the testbed (issue 3).

Method (all in one run, interleaved, so that the machine's noise hits every
contender alike; everything runs as the testbed's non-root user):

* cold native: ``hpcbridge convert docker://<registry>/<image>`` into a fresh,
  empty cache (download from the local registry, extraction, scaffold,
  mksquashfs, SIF), wall time of the whole command;
* cold apptainer: ``apptainer build --disable-cache --no-https out.sif docker://...@digest``
  with a fresh ``APPTAINER_TMPDIR``, wall time;
* mksquashfs floor: ``mksquashfs <rootfs> out -comp gzip -Xcompression-level 9 -all-root
  -no-xattrs -noappend`` on the same root filesystem (extracted once, untimed, by
  hpcbridge's own layer code) at the same compression: the cost of squashing alone;
* warm: ``hpcbridge convert`` of the cached tag (one HEAD request) and of the digest
  reference (no request) against ``apptainer pull --force --no-https x.sif docker://...``
  with a warm Apptainer cache (the first pull, untimed, fills it).

Median of ``--repeat`` runs (default 3) for the cold cases, of ``--warm-repeat``
(default 10) for the warm ones.  Results go to ``--json`` and, with ``--docs``,
into the "convert" section of docs/benchmarks.md.

    .venv/bin/python bench/convert.py [--image debian-python] [--repeat 3] [--docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpcbridge import runner  # noqa: E402
from tests.testbed.api import Testbed  # noqa: E402
from tests.testbed.users import as_user_argv  # noqa: E402

HPCBRIDGE = str(REPO / ".venv" / "bin" / "hpcbridge")


def timed(tb: Testbed, argv: list[str], env: dict[str, str] | None = None) -> float:
    full = as_user_argv(tb.user, argv)
    merged = dict(tb.env)
    merged.update(env or {})
    start = time.perf_counter()
    done = runner.run(full, env=merged, cwd=str(tb.user.home), check=False, timeout=3600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(argv)}\n{done.stderr[-3000:]}")
    return elapsed


def chown_tree(tb: Testbed, path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.lchown(p, tb.user.uid, tb.user.gid)


def prepare_rootfs(tb: Testbed, image: str, dest: Path) -> None:
    """The root filesystem hpcbridge squashes (layers + Apptainer scaffold), untimed."""
    from hpcbridge.images.fetch.local import load_local
    from hpcbridge.images.layers.apply import apply_layers
    from hpcbridge.images.refs import ArchiveRef
    from hpcbridge.images.sif.scaffold import make_scaffold, write_scaffold

    info = tb.image(image)
    img = load_local(ArchiveRef("oci", str(info.oci_dir)), ("linux", "amd64", None))
    dest.mkdir()
    apply_layers(img.layers, str(dest))
    sc = make_scaffold(img.config, source_ref=img.config_digest, manifest_digest=img.config_digest)
    write_scaffold(str(dest), sc.entries)
    os.chmod(dest, 0o755)
    chown_tree(tb, dest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default="debian-python")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--warm-repeat", type=int, default=10)
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "convert.json")
    ap.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    args = ap.parse_args()

    tb = Testbed.from_state_dir()
    info = tb.image(args.image)
    apptainer = str(tb.apptainer)
    mksquashfs = shutil.which("mksquashfs") or "/usr/bin/mksquashfs"
    work = tb.user_dir("bench-convert")
    tag_ref = f"docker://{info.ref}"
    name = info.ref.rsplit(":", 1)[0]
    digest_ref = f"docker://{name}@{info.digest}"
    rootfs = work / "rootfs"
    prepare_rootfs(tb, args.image, rootfs)

    cold: dict[str, list[float]] = {"native": [], "apptainer_build": [], "mksquashfs": []}
    for i in range(args.repeat):
        cache = work / f"cache-{i}"
        cold["native"].append(timed(tb, [HPCBRIDGE, "convert", tag_ref, "--cache-dir", str(cache)]))
        tmp = work / f"apptmp-{i}"
        tmp.mkdir()
        os.chown(tmp, tb.user.uid, tb.user.gid)
        out = work / f"apptainer-{i}.sif"
        argv = [apptainer, "build", "--disable-cache", "--no-https", str(out), digest_ref]
        cold["apptainer_build"].append(timed(tb, argv, {"APPTAINER_TMPDIR": str(tmp)}))
        sq = work / f"floor-{i}.sqfs"
        argv = [
            mksquashfs,
            str(rootfs),
            str(sq),
            "-noappend",
            "-comp",
            "gzip",
            "-Xcompression-level",
            "9",
            "-all-root",
            "-no-xattrs",
            "-no-progress",
            "-quiet",
        ]
        cold["mksquashfs"].append(timed(tb, argv))
        for p in (out, sq):
            p.unlink()
        if i:
            shutil.rmtree(cache)  # keep cache-0 for the warm runs
        print(
            f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in cold.items()), flush=True
        )

    warm: dict[str, list[float]] = {"native_tag": [], "native_digest": [], "apptainer_pull": []}
    appcache = work / "apptainer-cache"
    pull_env = {"APPTAINER_CACHEDIR": str(appcache)}
    pulled = work / "pulled.sif"
    pull = [apptainer, "pull", "--force", "--no-https", str(pulled), tag_ref]
    timed(tb, pull, pull_env)  # fills Apptainer's cache
    cache0 = str(work / "cache-0")
    for _ in range(args.warm_repeat):
        warm["native_tag"].append(timed(tb, [HPCBRIDGE, "convert", tag_ref, "--cache-dir", cache0]))
        warm["native_digest"].append(
            timed(tb, [HPCBRIDGE, "convert", digest_ref, "--cache-dir", cache0])
        )
        warm["apptainer_pull"].append(timed(tb, pull, pull_env))

    med = {k: statistics.median(v) for k, v in {**cold, **warm}.items()}
    result: dict[str, Any] = {
        "image": args.image,
        "ref": info.ref,
        "digest": info.digest,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "repeat": args.repeat,
        "warm_repeat": args.warm_repeat,
        "samples": {**cold, **warm},
        "median": med,
        "ratios": {
            "native_over_mksquashfs": med["native"] / med["mksquashfs"],
            "native_over_apptainer_build": med["native"] / med["apptainer_build"],
            "warm_tag_over_apptainer_pull": med["native_tag"] / med["apptainer_pull"],
            "warm_digest_over_apptainer_pull": med["native_digest"] / med["apptainer_pull"],
        },
        "targets": {
            "native_over_mksquashfs": 1.15,
            "native_over_apptainer_build": 0.85,
            "warm_tag_over_apptainer_pull": 1.5,
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    print(md)
    if args.docs:
        update_docs(REPO / "docs" / "benchmarks.md", md)
    shutil.rmtree(work, ignore_errors=True)


def markdown(r: dict[str, Any]) -> str:
    m, q = r["median"], r["ratios"]
    t = r["targets"]

    def ok(key: str) -> str:
        return "met" if q[key] <= t[key] else "**missed**"

    return "\n".join(
        [
            f"Image `{r['image']}` ({r['ref']}, {r['digest'][:19]}), {r['when']}, "
            f"{r['host']['cpus']} CPUs; median of {r['repeat']} cold / {r['warm_repeat']} warm runs.",
            "",
            "| measurement | median (s) | samples (s) |",
            "|---|---:|---|",
            *(
                f"| {label} | {m[k]:.3f} | {', '.join(f'{x:.3f}' for x in r['samples'][k])} |"
                for k, label in (
                    ("native", "`hpcbridge convert` cold (native)"),
                    ("apptainer_build", "`apptainer build` cold"),
                    ("mksquashfs", "`mksquashfs` alone, same rootfs, gzip 9"),
                    ("native_tag", "`hpcbridge convert` warm, tag (1 HEAD)"),
                    ("native_digest", "`hpcbridge convert` warm, digest ref (no request)"),
                    ("apptainer_pull", "`apptainer pull` warm cache"),
                )
            ),
            "",
            "| ratio | value | target | |",
            "|---|---:|---:|---|",
            f"| native / mksquashfs floor | {q['native_over_mksquashfs']:.2f} | <= 1.15 | {ok('native_over_mksquashfs')} |",
            f"| native / apptainer build | {q['native_over_apptainer_build']:.2f} | <= 0.85 | {ok('native_over_apptainer_build')} |",
            f"| warm convert (tag) / apptainer cached pull | {q['warm_tag_over_apptainer_pull']:.2f} | <= 1.5 | {ok('warm_tag_over_apptainer_pull')} |",
            f"| warm convert (digest) / apptainer cached pull | {q['warm_digest_over_apptainer_pull']:.2f} | | |",
        ]
    )


def update_docs(path: Path, body: str) -> None:
    """Replace (or add) the section between the convert bench markers."""
    begin, end = "<!-- bench/convert:begin -->", "<!-- bench/convert:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + f"\n\n## convert\n\nMeasured by `bench/convert.py`.\n\n{block}\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
