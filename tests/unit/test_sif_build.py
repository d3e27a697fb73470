"""build_sif end to end with the local mksquashfs (no Apptainer needed; see tests/testbed for that)."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from hpcbridge import runner
from hpcbridge.errors import ImageError, InputError
from hpcbridge.images.sif import format as sif
from hpcbridge.images.sif.native import build_mode, build_sif
from hpcbridge.images.sif.squash import mksquashfs_argv, parse_version
from tests.unit.test_layers import GZ, Blob, d, entry, hard, layer, make_tar, sym

pytestmark = pytest.mark.skipif(
    runner.which("mksquashfs") is None or runner.which("unsquashfs") is None,
    reason="squashfs-tools not installed",
)

CONFIG: dict[str, Any] = {
    "architecture": "arm64",
    "os": "linux",
    "created": "2023-03-04T05:06:07Z",
    "config": {
        "Env": ["PATH=/bin", "A=1"],
        "Cmd": ["/bin/sh"],
        "Labels": {"x": "y"},
        "WorkingDir": "/srv/app",
    },
    "rootfs": {"type": "layers", "diff_ids": []},
}


def layers() -> list[Blob]:
    one = Blob(
        gzip.compress(
            make_tar(
                d("bin/"),
                entry("bin/sh", b"#!fake", mode=0o755),
                d("etc/"),
                entry("etc/gone", b"x"),
            ),
            mtime=0,
        ),
        GZ,
    )
    two = layer(
        entry("etc/.wh.gone"),
        hard("bin/sh2", "bin/sh"),
        sym("lib", "usr/lib"),
        entry("lib/l.so", b"l"),
    )
    return [one, two]


def build(tmp_path: Path, name: str, **kw: Any) -> Path:
    out = tmp_path / f"{name}.sif"
    work = tmp_path / f"work-{name}"
    work.mkdir()
    build_sif(
        layers(),
        kw.pop("config", CONFIG),
        manifest_digest="sha256:" + "c" * 64,
        source_ref="docker://example.org/x:1",
        out=out,
        workdir=work,
        **kw,
    )
    assert os.listdir(work) == []
    return out


@pytest.mark.parametrize("mode", ["dir", "stream"])
def test_build_writes_a_valid_sif(tmp_path: Path, mode: str) -> None:
    out = build(tmp_path, "a", mode=mode)
    assert os.stat(out).st_mode & 0o777 == 0o755
    with open(out, "rb") as f:
        s = sif.read_sif(f)
        assert [d.datatype for d in s.descriptors] == [0x4001, 0x4006, 0x4006, 0x4004]
        assert (
            sif.read_object(f, s.descriptors[0]) == b"bootstrap: docker\nfrom: example.org/x:1\n\n"
        )
        p = s.primary_partition()
        assert p.offset % 4096 == 0 and p.offset + p.size == os.path.getsize(out)
        assert s.header.arch == b"04\x00" and s.header.created == 1677906367
        assert sif.read_object(f, p)[:4] == b"hsqs"
    listing = runner.run(["unsquashfs", "-o", str(p.offset), "-lls", "-d", "", str(out)]).stdout
    assert " /bin/sh\n" in listing and " /bin/sh2\n" in listing
    assert " /usr/lib/l.so\n" in listing and "/etc/gone" not in listing
    assert " /srv/app\n" in listing and " /.singularity.d/runscript\n" in listing
    assert "root/root" in listing and "0/0" not in listing


@pytest.mark.parametrize("mode", ["dir", "stream"])
def test_same_input_gives_identical_bytes_and_settings_change_them(
    tmp_path: Path, mode: str
) -> None:
    a, b = build(tmp_path, "a", mode=mode), build(tmp_path, "b", mode=mode)
    c = build(tmp_path, "c", level=1, mode=mode)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]


def test_bad_layer_leaves_no_partial_output(tmp_path: Path) -> None:
    out = tmp_path / "bad.sif"
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(ImageError, match="not a valid tar"):
        build_sif(
            [Blob(b"garbage" * 200)],
            CONFIG,
            manifest_digest="sha256:" + "d" * 64,
            source_ref="x",
            out=out,
            workdir=work,
        )
    assert not out.exists() and os.listdir(work) == []


def test_bad_config_and_windows_images_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="not linux"):
        build(tmp_path, "w", config={**CONFIG, "os": "windows"})
    with pytest.raises(ImageError, match="no layers"):
        build_sif(
            [],
            CONFIG,
            manifest_digest="sha256:0",
            source_ref="x",
            out=tmp_path / "o",
            workdir=tmp_path,
        )


def test_mksquashfs_argv() -> None:
    argv = mksquashfs_argv("/r", "/o.sif", offset=36864, compression="gzip", level=9)
    assert argv == [
        "mksquashfs",
        "/r",
        "/o.sif",
        "-offset",
        "36864",
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
    assert mksquashfs_argv("/r", "/o.sif", offset=36864, compression="gzip") == argv  # level 9
    assert "-Xcompression-level" not in mksquashfs_argv("/r", "/o", offset=0, compression="xz")
    lzo = mksquashfs_argv("/r", "/o", offset=0, compression="lzo", level=3)
    assert lzo[lzo.index("-comp") :][:4] == ["-comp", "lzo", "-Xcompression-level", "3"]
    with pytest.raises(InputError, match="out of range"):
        mksquashfs_argv("/r", "/o", offset=0, compression="gzip", level=12)
    with pytest.raises(InputError, match="unknown squashfs compression"):
        mksquashfs_argv("/r", "/o", offset=0, compression="brotli", level=1)
    with pytest.raises(InputError, match="xz, which takes no level"):
        mksquashfs_argv("/r", "/o", offset=0, compression="xz", level=9)


def listing(path: Path) -> list[str]:
    with open(path, "rb") as f:
        off = sif.read_sif(f).primary_partition().offset
    out = runner.run(["unsquashfs", "-o", str(off), "-lls", "-d", "", str(path)]).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[0][0] in "-dl":
            size = "" if parts[0][0] == "d" else parts[2]  # directory sizes depend on the layout
            rows.append(f"{parts[0]} {parts[1]} {size} {parts[3]} {parts[4]} {parts[5]}")
    return rows


def test_dir_and_stream_modes_give_the_same_tree(tmp_path: Path) -> None:
    a = listing(build(tmp_path, "a", mode="dir"))
    b = listing(build(tmp_path, "b", mode="stream"))
    assert a == b and len(a) > 30


@pytest.mark.parametrize("mode", ["dir", "stream"])
def test_hostile_layers_end_to_end(tmp_path: Path, mode: str) -> None:
    """A whole conversion of hostile layers: entries confined or skipped, setuid gone, host untouched."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep").write_text("keep")
    dev = entry("dev/sda", None, kind=b"4", mode=0o660)
    hostile = [
        layer(d("bin/"), entry("bin/sh", b"#!x", mode=0o4755), sym("esc", str(sentinel)), dev),
        layer(
            entry("../../outside", b"o"),
            entry(str(sentinel / "abs"), b"a"),
            entry("esc/through", b"t"),
            entry("esc/.wh.keep"),
            entry("../.wh.sentinel"),
        ),
    ]
    out, work = tmp_path / "h.sif", tmp_path / "work"
    work.mkdir()
    build_sif(
        hostile,
        CONFIG,
        manifest_digest="sha256:" + "e" * 64,
        source_ref="x",
        out=out,
        workdir=work,
        mode=mode,
    )
    assert sorted(p.name for p in sentinel.iterdir()) == ["keep"]
    assert not (tmp_path / "outside").exists()
    rows = listing(out)
    paths = {r.rsplit(" ", 1)[-1] if " -> " not in r else r.split(" ", 5)[5] for r in rows}
    inside = str(sentinel).lstrip("/")
    assert {"/outside", f"/{inside}/abs", f"/{inside}/through", f"/esc -> {sentinel}"} <= paths
    assert not any("sda" in r for r in rows)
    sh = next(r for r in rows if r.endswith(" /bin/sh"))
    assert sh.startswith("-rwxr-xr-x")


def test_build_mode_and_mksquashfs_version() -> None:
    assert build_mode() in ("stream", "dir")
    assert parse_version("mksquashfs version 4.5.1 (2022/03/17)") == (4, 5)
    assert parse_version("mksquashfs version 4.3-git (2014/06/09)") == (4, 3)
    assert parse_version("nonsense") is None


def test_mksquashfs_memory_and_processors_reach_its_argv_not_its_bytes(tmp_path: Path) -> None:
    argv = mksquashfs_argv("-", "/o", offset=0, processors=3, mem_mib=200, tar=True)
    assert argv[argv.index("-processors") + 1] == "3" and argv[argv.index("-mem") + 1] == "200M"
    plain = build(tmp_path, "plain", mode="stream").read_bytes()
    bounded = build(tmp_path, "bounded", mode="stream", processors=1, mem_mib=64).read_bytes()
    assert plain == bounded


class Listener:
    """A progress object with the per-layer hook (hpcbridge.images.progress)."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, int, int]] = []
        self.events: list[Any] = []

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.stages.append((stage, done, total))

    def layer(self, event: Any) -> None:
        self.events.append(event)


def test_the_progress_hook_hears_every_stage_and_every_layer(tmp_path: Path) -> None:
    from hpcbridge.images.layers.decompress import open_decompressed

    heard = Listener()
    blobs = layers()
    build(tmp_path, "p", mode="stream", progress=heard)
    names = [s[0] for s in heard.stages]
    assert names[0] == "extract" and names[-1] == "sif"
    assert ("extract", len(blobs), len(blobs)) in heard.stages
    squash = [s for s in heard.stages if s[0] == "squash"]
    assert squash[0] == ("squash", 0, 1) and squash[-1] == ("squash", 1, 1)
    fed = squash[1:-1]
    assert fed and fed[-1][1] == fed[-1][2] > 0  # every planned byte went to mksquashfs
    for i, blob in enumerate(blobs):
        size = len(open_decompressed(blob).read())
        unpacked = [e for e in heard.events if e.stage == "unpack" and e.index == i]
        assert unpacked[-1].done == size and unpacked[-1].digest == blob.digest
    streamed = [e for e in heard.events if e.stage == "stream"]
    assert streamed and all(e.done <= e.total for e in streamed)
    assert {e.index for e in streamed if e.done == e.total} == {e.index for e in streamed}
