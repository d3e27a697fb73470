"""enroot squashfs images: their files read back as an image config, and the SIF built
from one without unpacking it (real mksquashfs/unsquashfs; Apptainer runs it in
tests/testbed/test_pyxis_enroot.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from hpcbridge.images.cache import Cache
from hpcbridge.images.sif import format as sif
from hpcbridge.images.sif.enroot import parse_environment, parse_rc
from hpcbridge.images.sif.from_squashfs import convert_squashfs, read_image

#: /etc/rc as enroot's docker::configure writes it (labels, provenance line of enroot master)
RC = """# enroot-provenance: docker://registry-1.docker.io#library/img:tag
# com.example.v 1
# org.opencontainers.image.title my image

mkdir -p "/workspace" 2> /dev/null
cd "/workspace" && unset OLDPWD || exit 1

if [ -s /etc/rc.local ]; then
    . /etc/rc.local
fi

if [ $# -gt 0 ]; then
    exec '/entrypoint.sh' '--flag' "$@"
else
    exec '/entrypoint.sh' '--flag' 'bash' $'-c\\techo it\\'s'
fi
"""


def test_rc_gives_workdir_entrypoint_cmd_and_labels() -> None:
    image = parse_rc(RC)
    assert image.workdir == "/workspace"
    assert image.entrypoint == ("/entrypoint.sh", "--flag")
    assert image.cmd == ("bash", "-c\techo it's")
    assert image.labels == {"com.example.v": "1", "org.opencontainers.image.title": "my image"}
    assert image.provenance == "docker://registry-1.docker.io#library/img:tag"


def test_rc_of_older_enroot_and_without_entrypoint() -> None:
    old = 'cd "/opt" || exit 1\n\nif [ $# -gt 0 ]; then\n    exec  "$@"\nelse\n    exec \'python3\'\nfi\n'
    image = parse_rc(old)
    assert (image.workdir, image.entrypoint, image.cmd) == ("/opt", (), ("python3",))
    assert image.oci_config()["config"]["Cmd"] == ["python3"]
    assert parse_rc("").oci_config()["config"]["Cmd"] == ["/bin/sh"]


def test_environment_lines() -> None:
    text = 'PATH=/usr/bin:/bin\n# comment\nLANG="C.UTF-8"\nBAD-NAME=x\n\nA=b c $d\nA=later\n'
    assert parse_environment(text) == ("PATH=/usr/bin:/bin", "LANG=C.UTF-8", "A=later")


needs_squashfs = pytest.mark.skipif(
    not (shutil.which("mksquashfs") and shutil.which("unsquashfs")), reason="needs squashfs-tools"
)


def enroot_image(tmp: Path, with_scaffold: bool = False) -> Path:
    """A root filesystem laid out as enroot writes one, squashed as enroot does (lzo, -noD)."""
    root = tmp / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "usr/bin").mkdir(parents=True)
    (root / "workspace").mkdir()
    (root / "etc/rc").write_text(RC)
    (root / "etc/environment").write_text("PATH=/usr/local/bin:/usr/bin:/bin\nMSG=from enroot\n")
    (root / "usr/bin/tool").write_text("#!/bin/sh\necho tool\n")
    if with_scaffold:
        (root / ".singularity.d/env").mkdir(parents=True)
    out = tmp / "img.sqsh"
    argv = ["mksquashfs", str(root), str(out), "-noappend", "-all-root", "-quiet", "-no-progress"]
    comp = ["-comp", "lzo", "-noD"]
    done = subprocess.run([*argv, *comp], capture_output=True, check=False)
    if done.returncode != 0:  # a mksquashfs built without lzo
        subprocess.run(argv, capture_output=True, check=True)
    return out


@needs_squashfs
def test_sif_from_an_enroot_squashfs(tmp_path: Path) -> None:
    image = enroot_image(tmp_path)
    before = image.read_bytes()
    cache = Cache(tmp_path / "cache")
    digest, path, record, cached = convert_squashfs(image, cache)
    assert not cached
    assert image.read_bytes() == before  # the user's file is not touched
    assert record["workdir"] == "/workspace" and record["labels"]["com.example.v"] == "1"
    with open(path, "rb") as fh:
        info = sif.read_sif(fh)
    part = next(d for d in info.descriptors if d.datatype == sif.DATA_PARTITION)
    listing = subprocess.run(
        ["unsquashfs", "-o", str(part.offset), "-l", "-d", "", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "/.singularity.d/env/10-docker2singularity.sh" in listing
    assert "/usr/bin/tool" in listing and "/.singularity.d/runscript" in listing
    env = subprocess.run(
        ["unsquashfs", "-o", str(part.offset), "-cat", str(path), ".singularity.d/env/10-docker2singularity.sh"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert 'export MSG="${MSG:-"from enroot"}"' in env
    run = subprocess.run(
        ["unsquashfs", "-o", str(part.offset), "-cat", str(path), ".singularity.d/runscript"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert 'OCI_ENTRYPOINT=\'"/entrypoint.sh" "--flag"\'' in run
    again = convert_squashfs(image, cache)
    assert again[:2] == (digest, path) and again.cached  # keyed by content: a hit
    copy = tmp_path / "copy.sqsh"
    shutil.copy(image, copy)
    assert convert_squashfs(copy, cache)[0] == digest
    assert (
        json.loads((cache.sif_dir / f"{digest[7:]}.json").read_text())["backend"]
        == "enroot-squashfs"
    )


@needs_squashfs
def test_an_image_that_has_the_scaffold_is_only_wrapped(tmp_path: Path) -> None:
    image = enroot_image(tmp_path, with_scaffold=True)
    facts, names = read_image(image)
    assert ".singularity.d" in names and facts.workdir == "/workspace"
    path = convert_squashfs(image, Cache(tmp_path / "cache")).path
    with open(path, "rb") as fh:
        part = next(d for d in sif.read_sif(fh).descriptors if d.datatype == sif.DATA_PARTITION)
    with open(path, "rb") as fh:
        fh.seek(part.offset)
        assert fh.read(part.size) == image.read_bytes()[: part.size]


@needs_squashfs
def test_convert_routes_an_enroot_file_and_passes_other_squashfs_through(tmp_path: Path) -> None:
    from hpcbridge.images.convert import convert

    image = enroot_image(tmp_path)
    got = convert(str(image), cache_dir=tmp_path / "cache")
    assert got.workdir == "/workspace" and got.path.suffix == ".sif" and not got.cached
    assert convert(str(image), cache_dir=tmp_path / "cache").cached
    singularity = enroot_image(tmp_path / "s", with_scaffold=True)
    assert convert(str(singularity), cache_dir=tmp_path / "cache").path == singularity.resolve()
