"""Wrapper and module-file texts (pure), checked by running the wrapper with /bin/sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hpcbridge.errors import InputError
from hpcbridge.job.spec import Bind
from hpcbridge.wrap import (
    PinnedImage,
    WrapOptions,
    module_file,
    pinned_ref,
    wrapper_name,
    wrapper_script,
    write_wrappers,
)

DIGEST = "sha256:" + "ab" * 32
IMAGE = PinnedImage(
    "reg.example/tools/py:3",
    DIGEST,
    "/cache/sif/x y.sif",
    "cd" * 32,
    "docker://reg.example/tools/py@" + DIGEST,
)


def test_pinned_ref() -> None:
    assert (
        pinned_ref("127.0.0.1:5000/hpcb/py:bookworm", DIGEST)
        == f"docker://127.0.0.1:5000/hpcb/py@{DIGEST}"
    )
    assert pinned_ref("docker-archive:/x/img.tar", DIGEST) == "docker-archive:/x/img.tar"


def test_wrapper_runs_the_runtime_with_the_arguments_untouched(tmp_path: Path) -> None:
    # A stand-in "runtime" that prints its argv NUL-separated: what the wrapper execs.
    runtime = tmp_path / "fake-apptainer"
    runtime.write_text('#!/bin/sh\nprintf "%s\\0" "$@"\n')
    runtime.chmod(0o755)
    sif = tmp_path / "img.sif"
    sif.write_text("")
    image = PinnedImage("r", DIGEST, str(sif), "0" * 64, "r")
    opts = WrapOptions(
        executable=str(runtime), binds=(Bind("/data", "/data", "ro"),), version="1.4.5"
    )
    script = tmp_path / "python3"
    script.write_text(wrapper_script("python3", image, opts))
    args = ["a b", "", "$x", "it's", "*", "-c", "line\nbreak", "é"]
    out = subprocess.run(
        ["/bin/sh", str(script), *args],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": "/host/lib", "KEEP": "1"},
    ).stdout.decode()
    argv = out.split("\0")[:-1]
    assert argv == ["exec", "--no-eval", "-B", "/data:/data:ro", str(sif), "python3", *args]


def test_wrapper_unsets_leaky_variables_and_reports_a_missing_image(tmp_path: Path) -> None:
    opts = WrapOptions(executable="env")
    text = wrapper_script("tool", IMAGE, opts)
    assert "unset LD_PRELOAD LD_LIBRARY_PATH PYTHONPATH" in text
    assert "--cleanenv" not in text and "--cleanenv" in wrapper_script(
        "tool", IMAGE, WrapOptions(cleanenv=True)
    )
    res = subprocess.run(["/bin/sh", "-c", text, "tool"], capture_output=True, text=True)
    assert res.returncode == 127
    assert res.stderr.strip() == (
        "tool: the pinned image is missing: /cache/sif/x y.sif; restore it with: "
        f"hpcbridge convert docker://reg.example/tools/py@{DIGEST}"
    )


def test_names_and_gpu() -> None:
    assert wrapper_name("/opt/conda/bin/samtools") == "samtools"
    with pytest.raises(InputError):
        wrapper_name("bad name")
    assert '--nv "$sif"' in wrapper_script("nvidia-smi", IMAGE, WrapOptions(gpu="nvidia"))


def test_module_files() -> None:
    lua = module_file("/home/u/bin", IMAGE, ["python3", "/x/pip"], ["apptainer/1.4"], lua=True)
    assert 'depends_on("apptainer/1.4")' in lua
    assert 'prepend_path("PATH", "/home/u/bin")' in lua
    assert "python3, pip from reg.example/tools/py:3" in lua
    tcl = module_file("/home/u/my bin", IMAGE, ["python3"], [], lua=False)
    assert tcl.startswith("#%Module1.0\n")
    assert "prepend-path PATH {/home/u/my bin}" in tcl


def test_write_wrappers_refuses_foreign_files(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").write_text("#!/bin/sh\necho mine\n")
    with pytest.raises(InputError, match="not written by hpcbridge wrap"):
        write_wrappers(bin_dir, ["python3"], IMAGE, WrapOptions())
    paths = write_wrappers(
        bin_dir,
        ["python3", "pip"],
        IMAGE,
        WrapOptions(),
        force=True,
        module=tmp_path / "m" / "tool",
    )
    assert [p.name for p in paths] == ["python3", "pip", "tool"]
    assert os.stat(bin_dir / "pip").st_mode & 0o777 == 0o755
    # a second run over its own files needs no --force
    write_wrappers(bin_dir, ["python3"], IMAGE, WrapOptions())
