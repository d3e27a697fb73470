"""The convert block of docs/benchmarks.md, from bench/convert.py's result (pure)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

LABELS = {
    "zstd": "hpcbridge convert, zstd",
    "gzip": "hpcbridge convert, gzip",
    "before": "hpcbridge convert, gzip, before issue 15",
    "apptainer": "`apptainer build` (gzip)",
}
#: The limits of issue 15
PROCESS_LIMIT_MIB = 150
TREE_LIMIT_MIB = 1024
ZSTD_RATIO = {"debian-python": 0.35, "large": 0.6}


def med(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def _col(samples: list[dict[str, float]], key: str) -> float:
    return med([s[key] for s in samples])


def _image_table(
    name: str, img: dict[str, Any], cold: dict[str, list[dict[str, float]]], disk: dict[str, float]
) -> list[str]:
    app = _col(cold["apptainer"], "seconds")
    rows = [
        f"**{name}** (`{img['ref'][9:]}`, {img['digest'][:19]}; {img['about']})",
        "",
        "| contender | wall (s) | process peak (MiB) | tree peak (MiB) | disk peak (MiB) | wall / apptainer build |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for who in ("zstd", "gzip", "before", "apptainer"):
        s = cold[who]
        rows.append(
            f"| {LABELS[who]} | {_col(s, 'seconds'):.2f} | {_col(s, 'process_mib'):.0f} | "
            f"{_col(s, 'tree_mib'):.0f} | {disk[who]:.0f} | "
            f"{_col(s, 'seconds') / app:.2f} |"
        )
    rows.append("")
    listed = []
    for who in ("zstd", "gzip", "before", "apptainer"):
        seconds = ", ".join(f"{x['seconds']:.2f}" for x in cold[who])
        listed.append(f"{who} {seconds}")
    rows.append("Samples (s): " + "; ".join(listed) + ".")
    return rows


def _targets(r: dict[str, Any]) -> list[str]:
    rows = ["| target | measured | limit | |", "|---|---:|---:|---|"]

    def row(what: str, value: float, limit: float, fmt: str = "{:.2f}") -> None:
        mark = "met" if value <= limit else "**missed**"
        rows.append(f"| {what} | {fmt.format(value)} | {fmt.format(limit)} | {mark} |")

    for name, cold in r["cold"].items():
        mine = cold["gzip"] + cold["zstd"]
        row(
            f"{name}: process peak, every hpcbridge run (MiB)",
            max(s["process_mib"] for s in mine),
            PROCESS_LIMIT_MIB,
            "{:.0f}",
        )
        row(
            f"{name}: tree peak, every hpcbridge run (MiB)",
            max(s["tree_mib"] for s in mine),
            TREE_LIMIT_MIB,
            "{:.0f}",
        )
        app = _col(cold["apptainer"], "seconds")
        row(
            f"{name}: zstd / apptainer build (medians)",
            _col(cold["zstd"], "seconds") / app,
            ZSTD_RATIO.get(name, 0.6),
        )
        row(
            f"{name}: gzip / gzip before issue 15 (medians)",
            _col(cold["gzip"], "seconds") / _col(cold["before"], "seconds"),
            1.0,
        )
    if r["warm"]:
        w = r["warm"]
        row(
            "warm convert by tag / apptainer cached pull (medians)",
            med(w["tag"]) / med(w["apptainer_pull"]),
            1.0,
        )
    return rows


def markdown(r: dict[str, Any]) -> str:
    h = r["host"]
    load = ", ".join(f"{x:.1f}" for x in h["load_before"])
    out = [
        f"Run of {r['when']}, {h['cpus']} CPUs, Python {h['python']}, load average before the run "
        f"{load}. Medians of {r['repeat']} cold runs per contender (the order rotates between "
        f"rounds), {r['exec_repeat']} start-ups per SIF, {r['warm_repeat']} warm pairs; every "
        'sample is in `bench/results/convert.json`. "before issue 15" is commit '
        f"`{r['before']}` run by the same Python.",
        "",
    ]
    for name, cold in r["cold"].items():
        out += _image_table(name, r["images"][name], cold, r["disk_mib"][name])
        out.append("")
    out += ["| `apptainer exec` start-up (s) | gzip SIF | zstd SIF |", "|---|---:|---:|"]
    for name, ex in r["exec"].items():
        cmd = r["images"][name]["command"]
        out.append(f"| {name} (`{cmd}`) | {med(ex['gzip']):.3f} | {med(ex['zstd']):.3f} |")
    out.append("")
    if r["warm"]:
        w = r["warm"]
        out += [
            "| warm, debian-python (s) | median | samples |",
            "|---|---:|---|",
            f"| hpcbridge convert, cached tag (one HEAD) | {med(w['tag']):.3f} | {', '.join(f'{x:.3f}' for x in w['tag'])} |",
            f"| hpcbridge convert, digest reference (no request) | {med(w['digest']):.3f} | {', '.join(f'{x:.3f}' for x in w['digest'])} |",
            f"| `apptainer pull --force`, warm cache | {med(w['apptainer_pull']):.3f} | {', '.join(f'{x:.3f}' for x in w['apptainer_pull'])} |",
            "",
        ]
    out += _targets(r)
    return "\n".join(out)
