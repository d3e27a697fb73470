"""The one table of squashfs compressors and levels, and every place that reads it."""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

import pytest

from hpcbridge import _toml, runner
from hpcbridge.config import load_config
from hpcbridge.config.schema import Config
from hpcbridge.errors import ConfigError, InputError
from hpcbridge.images.sif import compression as C

ENV = {"HOME": "/home/alice", "USER": "alice"}


def test_problems_name_the_value_and_the_fix() -> None:
    assert C.problem("gzip", None) is None and C.problem("zstd", 22) is None
    assert C.problem("xz", None) is None and C.problem("lz4", None) is None
    msg, fix = C.problem("xz", 6) or ("", "")
    assert "level 6 given for xz" in msg and "gzip (1-9), zstd (1-22), lzo (1-9)" in fix
    msg, fix = C.problem("gzip", 0) or ("", "")
    assert "out of range for gzip" in msg and fix == "use a level from 1 to 9"
    msg, fix = C.problem("lzma", None) or ("", "")
    assert "unknown squashfs compression 'lzma'" in msg and "gzip, zstd, xz, lz4, lzo" in fix
    with pytest.raises(InputError, match="takes no level"):
        C.check("lz4", 1)


def test_effective_level_and_argv() -> None:
    assert C.effective_level("gzip", None) == C.DEFAULT_LEVEL == 9
    assert C.effective_level("zstd", 19) == 19
    assert C.effective_level("xz", None) is None
    assert C.mksquashfs_args("zstd", None) == ["-comp", "zstd", "-Xcompression-level", "9"]
    assert C.mksquashfs_args("lzo", 4) == ["-comp", "lzo", "-Xcompression-level", "4"]
    assert C.mksquashfs_args("lz4", None) == ["-comp", "lz4"]


@pytest.mark.skipif(shutil.which("mksquashfs") is None, reason="needs mksquashfs")
def test_table_agrees_with_mksquashfs_help() -> None:
    """Each compressor's ``-Xcompression-level`` range as ``mksquashfs -help`` prints it."""
    done = runner.run(["mksquashfs", "-help"], check=False)
    text = (done.stdout + done.stderr).split("Compressors available and compressor specific")[1]
    sections = re.split(r"\n\t(?=\w)", text)
    found: dict[str, object] = {}
    for section in sections[1:]:
        name = section.split()[0]
        bounds = re.search(r"-Xcompression-level.*?should be (\d+) \.\. (\d+)", section, re.S)
        found[name] = (int(bounds[1]), int(bounds[2])) if bounds else None
    assert {name: found[name] for name in C.COMPRESSORS} == C.LEVELS


def test_packaged_defaults_agree_with_the_table() -> None:
    text = resources.files("hpcbridge.config").joinpath("defaults.toml").read_text("utf-8")
    convert = _toml.loads(text)["convert"]
    assert convert["compression"] == C.DEFAULT_SETTING == "auto"
    assert convert["level"] == C.DEFAULT_LEVEL
    assert C.DEFAULT_COMPRESSOR == "gzip"  # what auto means until zstd is proven


def _load(tmp_path: Path, site: str, user: str, cli: dict[str, object]) -> Config:
    (tmp_path / "site.toml").write_text(site)
    (tmp_path / "hpcbridge").mkdir(exist_ok=True)
    (tmp_path / "hpcbridge" / "config.toml").write_text(user)
    env = {**ENV, "HPCBRIDGE_SITE_CONFIG": str(tmp_path / "site.toml")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    return load_config(cli, environ=env, cwd=tmp_path / "hpcbridge")


def test_config_refuses_a_level_set_for_a_compressor_without_levels(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"convert\.level = 3 is set, but xz takes no") as err:
        _load(tmp_path, "", "[convert]\ncompression = 'xz'\nlevel = 3\n", {})
    assert str(tmp_path / "hpcbridge" / "config.toml") in err.value.message
    assert "gzip (1-9)" in (err.value.hint or "")
    with pytest.raises(ConfigError, match="lz4 takes no compression level"):
        _load(tmp_path, "", "", {"convert.compression": "lz4", "convert.level": 4})
    with pytest.raises(ConfigError, match="is above 22, the maximum for zstd"):
        _load(tmp_path, "", "", {"convert.compression": "zstd", "convert.level": 23})


def test_config_level_of_a_lower_layer_does_not_apply_to_xz(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "[convert]\nlevel = 6\n", "", {"convert.compression": "xz"})
    assert cfg.convert.compression == "xz"
    cfg = _load(tmp_path, "", "[convert]\ncompression = 'zstd'\n", {"convert.level": 19})
    assert cfg.convert.level == 19
