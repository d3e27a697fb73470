"""Bad-input corpus for site files: `check_file` and `load_config` name file, key and fix.

A typo in a site file must never be silently ignored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbridge.config import load_config
from hpcbridge.config.loader import check_file
from hpcbridge.errors import ConfigError

# (id, site file text, substrings of the one-line problem)
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    ("unknown-section", "[cach]\ndir = '/x'\n", ("unknown key 'cach'", "did you mean 'cache'", "valid keys:")),
    ("unknown-key", "[polling]\nmin_intervall = 10\n",
     ("unknown key 'polling.min_intervall'", "did you mean 'min_interval'", "max_backoff, min_interval")),
    ("unknown-partition-key", "[partitions.gpu]\nmax_tim = '1:00:00'\n",
     ("unknown key 'partitions.gpu.max_tim'", "did you mean 'max_time'")),
    ("section-not-table", "cache = '/x'\n", ("cache = '/x' is not a table",)),
    ("partition-not-table", "[partitions]\ngpu = 1\n", ("partitions.gpu = 1 is not a table",)),
    ("bad-partition-name", "[partitions.'a b']\n", ("partition name 'a b'",)),
    ("bad-flavor", "[runtime]\nflavor = 'docker'\n", ("runtime.flavor = 'docker' is not valid", "apptainer")),
    ("bad-backend", "[convert]\nbackend = 'skopeo'\n", ("convert.backend = 'skopeo'", "native")),
    ("bad-compression", "[convert]\ncompression = 'bz2'\n", ("convert.compression = 'bz2'",)),
    ("level-string", "[convert]\nlevel = '9'\n", ("convert.level = '9' is not a positive whole number",)),
    ("level-too-high", "[convert]\ncompression = 'gzip'\nlevel = 12\n", ("convert.level = 12 is above 9",)),
    ("negative-interval", "[polling]\nmin_interval = -5\n", ("polling.min_interval = -5",)),
    ("backoff-below-interval", "[polling]\nmin_interval = 60\nmax_backoff = 10\n",
     ("polling.max_backoff = 10 is below polling.min_interval = 60",)),
    ("shared-not-bool", "[cache]\nshared = 'yes'\n", ("cache.shared = 'yes' is not true/false",)),
    ("path-not-string", "[cache]\ndir = 5\n", ("cache.dir = 5 is not a path",)),
    ("unset-variable", "[cache]\ndir = '/scratch/$NO_SUCH_VAR_X/c'\n", ("$NO_SUCH_VAR_X", "not set")),
    ("deny-relative", "[binds]\ndeny = ['etc']\n", ("binds.deny = 'etc' is not an absolute path",)),
    ("deny-not-list", "[binds]\ndeny = '/'\n", ("binds.deny = '/' is not a list of strings",)),
    ("default-bind-relative-dst", "[binds]\ndefault = ['/scratch:scratch']\n",
     ("binds.default", "is not an absolute container path")),
    ("default-bind-bad-mode", "[binds]\ndefault = ['/a:/a:rox']\n", ("binds.default", "'rox' is not a bind option")),
    ("env-allow-bad-name", "[env]\nallow = ['OMP-*']\n", ("env.allow = 'OMP-*'",)),
    ("mpi-env-not-strings", "[mpi]\nenv = { UCX_TLS = 1 }\n", ("mpi.env", "is not a table of strings")),
    ("mpi-env-bad-name", "[mpi]\nenv = { '1X' = 'a' }\n", ("mpi.env = '1X' is not a variable name",)),
    ("bad-pmi", "[mpi]\npmi = 'pmi3'\n", ("mpi.pmi = 'pmi3'", "pmi2")),
    ("bad-gpu-request", "[gpu]\nrequest = 'gpu'\n", ("gpu.request = 'gpu'", "gres")),
    ("bad-scheduler", "[scheduler]\nbackend = 'slurm'\n", ("scheduler.backend = 'slurm'", "cli")),
    ("bad-max-time", "[partitions.a]\nmax_time = 'forever'\n", ("partitions.a.max_time = 'forever'",)),
    ("bad-gpu-vendor", "[partitions.a]\ngpu_vendor = 'nvida'\n", ("gpu_vendor = 'nvida'", "did you mean 'nvidia'")),
    ("bad-default-mpi", "[partitions.a]\ndefault_mpi = 'mpich'\n", ("default_mpi = 'mpich'",)),
    ("bad-mem", "[partitions.a]\nmem_per_node = 'lots'\n", ("mem_per_node = 'lots' is not a memory size",)),
    ("two-defaults", "[partitions.a]\ndefault = true\n[partitions.b]\ndefault = true\n",
     ("partitions a, b are all marked default = true",)),
    ("default-time-above-max", "[partitions.a]\nmax_time = 60\ndefault_time = 120\n",
     ("default_time is above its max_time",)),
    ("gpus-without-vendor", "[partitions.a]\ngpus_per_node = 4\n", ("gpus_per_node but gpu_vendor = \"none\"",)),
    ("invalid-toml", "[polling\nmin_interval = 1\n", ("invalid TOML",)),
    ("max-array-zero", "[limits]\nmax_array_size = 0\n", ("limits.max_array_size = 0",)),
]  # fmt: skip


@pytest.mark.parametrize(("text", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_site_file(tmp_path: Path, text: str, needles: tuple[str, ...]) -> None:
    site = tmp_path / "site.toml"
    site.write_text(text, encoding="utf-8")
    problems = check_file(site, environ={"HOME": str(tmp_path), "USER": "u"})
    assert len(problems) == 1, problems
    line = problems[0]
    assert "\n" not in line
    assert str(site) in line  # names the file
    for needle in needles:
        assert needle in line, (needle, line)
    # load_config refuses the same file with the same message
    with pytest.raises(ConfigError) as info:
        load_config(
            cwd=tmp_path,
            environ={"HOME": str(tmp_path), "USER": "u", "HPCBRIDGE_SITE_CONFIG": str(site)},
        )
    assert str(info.value) == line


def test_corpus_size() -> None:
    assert len(CASES) >= 30 and len({c[0] for c in CASES}) == len(CASES)


def test_check_reports_every_problem_not_just_the_first(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        "[polling]\nmin_intervall = 10\nmax_backoff = 'x'\n[runtime]\nflavour = 'apptainer'\n"
        "[partitions.gpu]\nmax_tim = 1\ngpu_vendor = 'intel'\n[cach]\n"
    )
    problems = check_file(site, environ={"HOME": str(tmp_path)})
    assert len(problems) == 6
    assert all(p.startswith(f"{site}: ") for p in problems)


def test_check_missing_file(tmp_path: Path) -> None:
    assert check_file(tmp_path / "nope.toml") == [
        f"{tmp_path / 'nope.toml'}: file does not exist (check the path)"
    ]


def test_check_valid_file(tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text("[polling]\nmin_interval = 60\n[partitions.a]\ndefault = true\n")
    assert check_file(site, environ={"HOME": str(tmp_path)}) == []


def test_user_file_typo_is_an_error_too(tmp_path: Path) -> None:
    conf = tmp_path / "home" / ".config" / "hpcbridge"
    conf.mkdir(parents=True)
    (conf / "config.toml").write_text("[cache]\ndri = '/x'\n")
    with pytest.raises(ConfigError, match=r"config.toml: unknown key 'cache.dri'"):
        load_config(
            cwd=tmp_path,
            environ={"HOME": str(tmp_path / "home"), "HPCBRIDGE_SITE_CONFIG": "/dev/null"},
        )


def test_project_file_typo_is_an_error_too(tmp_path: Path) -> None:
    (tmp_path / "hpcbridge.toml").write_text("[polling]\nmax_backof = 10\n")
    with pytest.raises(ConfigError, match=r"hpcbridge.toml: unknown key 'polling.max_backof'"):
        load_config(
            cwd=tmp_path, environ={"HOME": str(tmp_path), "HPCBRIDGE_SITE_CONFIG": "/dev/null"}
        )
