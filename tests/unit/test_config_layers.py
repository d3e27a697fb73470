"""load_config: layering, typed environment values, sources, site policies.

Every test builds its own files under tmp_path and passes its own environment
dict and cwd: no global state is read (HPCBRIDGE_SITE_CONFIG always points at a
test file, so /etc/hpcbridge/site.toml is never consulted).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpcbridge.config import Config, load_config
from hpcbridge.errors import ConfigError


class Env:
    """A private home, XDG dirs, site file and project dir for one test."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.home = tmp_path / "home"
        self.project = tmp_path / "project"
        self.site = tmp_path / "site.toml"
        self.user = self.home / ".config" / "hpcbridge" / "config.toml"
        for d in (self.home, self.project, self.user.parent):
            d.mkdir(parents=True, exist_ok=True)
        self.site.write_text("")
        self.environ = {
            "HOME": str(self.home),
            "USER": "alice",
            "HPCBRIDGE_SITE_CONFIG": str(self.site),
        }

    def write(self, which: str, text: str) -> Path:
        path = {"site": self.site, "user": self.user, "project": self.project / "hpcbridge.toml"}[
            which
        ]
        path.write_text(text, encoding="utf-8")
        return path

    def load(self, cli: dict[str, object] | None = None, **env: str) -> Config:
        return load_config(cli or {}, cwd=self.project, environ={**self.environ, **env})


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def test_defaults_and_their_sources(env: Env) -> None:
    cfg = env.load()
    assert cfg.runtime.flavor == "apptainer"
    assert cfg.runtime.executable == "apptainer"
    assert cfg.runtime.version is None
    assert cfg.cache.dir == env.home / ".cache" / "hpcbridge"
    assert cfg.cache.tmp_dir is None
    assert cfg.cache.effective_tmp_dir == cfg.cache.dir / "tmp"
    assert cfg.state.dir == env.home / ".local" / "state" / "hpcbridge"
    assert cfg.templates.dir is None
    assert cfg.polling.min_interval == 30.0
    assert cfg.scheduler.backend == "cli"
    assert cfg.convert.backend == "native" and cfg.convert.level == 9
    assert cfg.gpu.request == "gres" and cfg.gpu.gres_name == "gpu"
    assert "/" in cfg.binds.deny and cfg.binds.allow is None
    assert cfg.partitions == {} and cfg.default_partition is None
    assert cfg.source_of("cache.dir") == "default"
    assert cfg.source_of("polling.min_interval") == "default"
    assert cfg.layers == (str(env.site),)
    json.dumps(cfg.to_dict())


def test_xdg_dirs_follow_the_environment(env: Env, tmp_path: Path) -> None:
    cfg = env.load(XDG_CACHE_HOME=str(tmp_path / "xc"), XDG_STATE_HOME=str(tmp_path / "xs"))
    assert cfg.cache.dir == tmp_path / "xc" / "hpcbridge"
    assert cfg.state.dir == tmp_path / "xs" / "hpcbridge"


def test_xdg_config_home_locates_the_user_file(env: Env, tmp_path: Path) -> None:
    other = tmp_path / "xdgconf" / "hpcbridge"
    other.mkdir(parents=True)
    (other / "config.toml").write_text("[convert]\nlevel = 3\n")
    cfg = env.load(XDG_CONFIG_HOME=str(tmp_path / "xdgconf"))
    assert cfg.convert.level == 3
    assert cfg.source_of("convert.level") == str(other / "config.toml")


def test_precedence_site_user_project_env_cli(env: Env) -> None:
    env.write("site", "[convert]\nlevel = 1\ncompression = 'zstd'\nplatform = 'linux/arm64'\n"
              "[scheduler]\ncluster = 'site'\n[gpu]\ngres_name = 'gpgpu'\n")  # fmt: skip
    env.write("user", "[convert]\nlevel = 2\ncompression = 'lzo'\n[scheduler]\ncluster = 'user'\n")
    env.write("project", "[convert]\nlevel = 3\n[scheduler]\ncluster = 'project'\n")
    cfg = env.load(
        {"convert.level": 5}, HPCBRIDGE_CONVERT_LEVEL="4", HPCBRIDGE_SCHEDULER_CLUSTER="env"
    )
    assert cfg.convert.level == 5
    assert cfg.source_of("convert.level") == "--convert-level"
    assert cfg.scheduler.cluster == "env"
    assert cfg.source_of("scheduler.cluster") == "HPCBRIDGE_SCHEDULER_CLUSTER"
    assert cfg.convert.compression == "lzo"
    assert cfg.source_of("convert.compression") == str(env.user)
    assert cfg.convert.platform == "linux/arm64"
    assert cfg.source_of("convert.platform") == str(env.site)
    assert cfg.gpu.gres_name == "gpgpu"
    cfg = env.load()
    assert cfg.convert.level == 3
    assert cfg.source_of("convert.level") == str(env.project / "hpcbridge.toml")
    assert cfg.layers == (str(env.site), str(env.user), str(env.project / "hpcbridge.toml"))


def test_cli_labels_name_the_flag(env: Env) -> None:
    cfg = load_config(
        {"polling.min_interval": 45.0},
        cwd=env.project,
        environ=env.environ,
        cli_labels={"polling.min_interval": "--interval"},
    )
    assert cfg.source_of("polling.min_interval") == "--interval"


def test_environment_values_are_typed(env: Env) -> None:
    cfg = env.load(
        HPCBRIDGE_CACHE_SHARED="yes",
        HPCBRIDGE_CACHE_DIR="relative/cache",
        HPCBRIDGE_POLLING_MIN_INTERVAL="60",
        HPCBRIDGE_ENV_ALLOW="LANG, OMP_*",
        HPCBRIDGE_CONVERT_INSECURE_REGISTRIES='["127.0.0.1:5000"]',
        HPCBRIDGE_MPI_ENV="UCX_TLS=self,tcp, UCX_POSIX_USE_PROC_LINK=n",
        HPCBRIDGE_RUNTIME_FLAVOR="singularity",
        HPCBRIDGE_LIMITS_MAX_TASKS="500",
    )
    assert cfg.cache.shared is True
    assert cfg.cache.dir == env.project / "relative" / "cache"  # relative to cwd
    assert cfg.polling.min_interval == 60.0
    assert cfg.env.allow == ("LANG", "OMP_*")
    assert (
        cfg.env.allows("OMP_NUM_THREADS")
        and cfg.env.allows("LANG")
        and not cfg.env.allows("LC_ALL")
    )
    assert cfg.convert.insecure_registries == ("127.0.0.1:5000",)
    assert cfg.mpi.env == {"UCX_TLS": "self,tcp", "UCX_POSIX_USE_PROC_LINK": "n"}
    assert cfg.runtime.flavor == "singularity"
    assert cfg.runtime.executable == "singularity"  # follows the flavor when unset
    assert cfg.limits.max_tasks == 500


def test_environment_strmap_as_toml_inline_table(env: Env) -> None:
    cfg = env.load(HPCBRIDGE_MPI_ENV='{ UCX_TLS = "self,tcp", X = "1" }')
    assert cfg.mpi.env == {"UCX_TLS": "self,tcp", "X": "1"}


def test_unrelated_and_empty_variables_are_ignored(env: Env) -> None:
    cfg = env.load(HPCBRIDGE_TESTBED_DIR="/x", HPCBRIDGE_CACHE_DIR="", HPCBRIDGE_TASK="3")
    assert cfg.cache.dir == env.home / ".cache" / "hpcbridge"


def test_unknown_variable_of_a_known_section_is_an_error(env: Env) -> None:
    with pytest.raises(ConfigError) as info:
        env.load(HPCBRIDGE_POLLING_MIN_INTERVALL="60")
    assert "HPCBRIDGE_POLLING_MIN_INTERVALL" in info.value.message
    assert "HPCBRIDGE_POLLING_MIN_INTERVAL" in (info.value.hint or "")


def test_bad_environment_value_names_the_variable(env: Env) -> None:
    with pytest.raises(ConfigError) as info:
        env.load(HPCBRIDGE_POLLING_MIN_INTERVAL="soon")
    assert str(info.value).startswith(
        "HPCBRIDGE_POLLING_MIN_INTERVAL: polling.min_interval = 'soon'"
    )


def test_polling_floor_cannot_be_lowered(env: Env) -> None:
    env.write("site", "[polling]\nmin_interval = 20\n")
    env.write("user", "[polling]\nmin_interval = 5\n")
    cfg = env.load({"polling.min_interval": 1}, HPCBRIDGE_POLLING_MIN_INTERVAL="2")
    assert cfg.polling.min_interval == 20.0
    assert cfg.source_of("polling.min_interval") == str(env.site)
    assert len(cfg.warnings) == 3
    assert "below the site minimum 20 s" in cfg.warnings[0]


def test_polling_floor_can_be_raised(env: Env) -> None:
    env.write("site", "[polling]\nmin_interval = 20\n")
    cfg = env.load(HPCBRIDGE_POLLING_MIN_INTERVAL="90")
    assert cfg.polling.min_interval == 90.0 and not cfg.warnings


def test_packaged_default_is_the_floor_without_site_file(env: Env) -> None:
    cfg = env.load({"polling.min_interval": 5})
    assert cfg.polling.min_interval == 30.0
    assert cfg.warnings


def test_site_may_lower_the_packaged_default(env: Env) -> None:
    env.write("site", "[polling]\nmin_interval = 1\n")
    assert env.load().polling.min_interval == 1.0


def test_deny_list_only_grows_after_the_site(env: Env) -> None:
    env.write("site", "[binds]\ndeny = ['/', '/etc/**']\n")
    env.write("user", "[binds]\ndeny = ['/secret']\n")
    cfg = env.load()
    assert cfg.binds.deny == ("/", "/etc/**", "/secret")
    assert cfg.source_of("binds.deny") == f"{env.site} + {env.user}"


def test_site_file_replaces_the_default_deny_list(env: Env) -> None:
    env.write("site", "[binds]\ndeny = ['/']\n")
    assert env.load().binds.deny == ("/",)


@pytest.mark.parametrize("which", ["user", "project"])
def test_allow_list_is_site_only(env: Env, which: str) -> None:
    env.write(which, "[binds]\nallow = ['/']\n")
    with pytest.raises(ConfigError, match="only be set in the site file"):
        env.load()


def test_allow_list_from_environment_is_refused(env: Env) -> None:
    with pytest.raises(ConfigError, match=r"HPCBRIDGE_BINDS_ALLOW: binds.allow can only"):
        env.load(HPCBRIDGE_BINDS_ALLOW="/")


def test_paths_expand_user_variables_and_home(env: Env) -> None:
    env.write(
        "site", "[cache]\ndir = '/scratch/$USER/c'\ntmp_dir = '${HOME}/t'\n[state]\ndir = '~/s'\n"
    )
    cfg = env.load()
    assert cfg.cache.dir == Path("/scratch/alice/c")
    assert cfg.cache.tmp_dir == env.home / "t"
    assert cfg.state.dir == env.home / "s"


def test_relative_paths_in_a_file_are_relative_to_it(env: Env) -> None:
    env.write("project", "[templates]\ndir = 'tpl'\n")
    assert env.load().templates.dir == env.project / "tpl"


def test_unset_variable_in_a_path_is_an_error(env: Env) -> None:
    env.write("site", "[cache]\ndir = '/scratch/$NOPE/c'\n")
    with pytest.raises(ConfigError, match=r"uses \$NOPE, which is not set"):
        env.load()


def test_missing_site_file_named_by_variable(env: Env, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"HPCBRIDGE_SITE_CONFIG=.*does not exist"):
        env.load(HPCBRIDGE_SITE_CONFIG=str(tmp_path / "missing.toml"))


def test_partitions(env: Env) -> None:
    env.write(
        "site",
        "[partitions.cpu]\ndefault = true\nmax_time = '2-00:00:00'\ndefault_time = 60\n"
        "mem_per_node = '256G'\n[partitions.gpu]\ngpu_vendor = 'nvidia'\ngpus_per_node = 4\n"
        "max_time = 'UNLIMITED'\ndefault_mpi = 'pmi2'\n[partitions.empty]\n",
    )
    env.write("user", "[partitions.gpu]\ngres_name = 'gpu:a100'\n")
    cfg = env.load({"partitions.cpu.max_nodes": "4"})
    cpu, gpu = cfg.partitions["cpu"], cfg.partitions["gpu"]
    assert cfg.default_partition is cpu
    assert (cpu.max_time, cpu.default_time, cpu.mem_per_node) == (172800, 3600, 262144)
    assert (
        cpu.max_nodes == 4
        and cfg.source_of("partitions.cpu.max_nodes") == "--partitions-cpu-max-nodes"
    )
    assert gpu.has_gpus and gpu.gpus_per_node == 4 and gpu.max_time is None
    assert gpu.gres_name == "gpu:a100" and cfg.source_of("partitions.gpu.gres_name") == str(
        env.user
    )
    assert not cfg.partitions["empty"].has_gpus
    assert cfg.source_of("partitions.empty.gpu_vendor") == "default"
    d = cfg.to_dict()
    assert d["partitions"]["cpu"]["max_time"] == "2-00:00:00"
    assert d["partitions"]["cpu"]["mem_per_node"] == "256G"


def test_default_binds_are_parsed(env: Env) -> None:
    env.write(
        "site", "[binds]\ndefault = ['/scratch', '/data:/data:ro']\n[mpi]\nbinds = ['/tmp']\n"
    )
    cfg = env.load()
    assert [(b.src, b.dst, b.mode) for b in cfg.binds.default] == [
        ("/scratch", "/scratch", "rw"),
        ("/data", "/data", "ro"),
    ]
    assert cfg.to_dict()["binds"]["default"] == ["/scratch:/scratch:rw", "/data:/data:ro"]
    assert cfg.mpi.binds[0].dst == "/tmp"


def test_mpi_pmi_and_env_per_flavor(env: Env) -> None:
    env.write("site", "[mpi]\nenv = { A = '1' }\nopenmpi_env = { B = '2' }\n")
    cfg = env.load()
    assert cfg.mpi.pmi_for("openmpi") == "pmix" and cfg.mpi.pmi_for("mpich") == "pmi2"
    assert cfg.mpi.pmi_for("unknown") == "pmix"
    assert cfg.mpi.env_for("openmpi") == {"A": "1", "B": "2"}
    assert cfg.mpi.env_for("mpich")["UCX_TLS"] == "^cma"
    assert cfg.mpi.env_for("unknown") == {"A": "1"}


def test_source_of_unknown_key_names_valid_ones(env: Env) -> None:
    with pytest.raises(ConfigError) as info:
        env.load().source_of("cache.dri")
    assert "unknown key 'cache.dri'" in info.value.message
    assert "did you mean 'cache.dir'" in (info.value.hint or "")


def test_unknown_cli_override_is_an_error(env: Env) -> None:
    with pytest.raises(ConfigError) as info:
        env.load({"polling.interval": 3})
    assert "polling.interval" in info.value.message
    assert "polling.min_interval" in (info.value.hint or "")


def test_cli_none_means_not_given(env: Env) -> None:
    assert env.load({"cache.dir": None}).source_of("cache.dir") == "default"


def test_config_is_frozen(env: Env) -> None:
    cfg = env.load()
    with pytest.raises(AttributeError):
        cfg.polling.min_interval = 1  # type: ignore[misc]


def test_relative_site_config_variable_is_relative_to_cwd(env: Env) -> None:
    (env.project / "site.toml").write_text("[convert]\nlevel = 2\n")
    cfg = env.load(HPCBRIDGE_SITE_CONFIG="site.toml")
    assert cfg.convert.level == 2
    assert cfg.source_of("convert.level") == "site.toml"


def test_backoff_below_interval_names_the_value_set_last(env: Env) -> None:
    env.write("site", "[polling]\nmin_interval = 601\n")  # above the packaged max_backoff
    with pytest.raises(ConfigError) as info:
        env.load()
    assert str(info.value).startswith(f"{env.site}: polling.min_interval = 601 is above")
    assert "polling.max_backoff = 600 (default)" in str(info.value)
    env.write("site", "[polling]\nmin_interval = 60\n")
    with pytest.raises(ConfigError, match=r"^--polling-max-backoff: polling.max_backoff = 10 is"):
        env.load({"polling.max_backoff": 10})
