"""Run-time values and checks, site rules for the new keys, the hpcbridge.toml surprise.

The launcher's bash program is executed here (bash only, no Slurm, no Apptainer):
what a rank does with its marks and checks is plain shell and can be checked
without the testbed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hpcbridge import runner
from hpcbridge.config import Config, load_config, validate_job
from hpcbridge.errors import ConfigError, JobSpecError
from hpcbridge.job.load import job_from_dict, load_job
from hpcbridge.render import ResolvedImage, TrackingContext, render_job
from hpcbridge.render.launcher import launcher_argv
from hpcbridge.render.runtime import CHECK_FAILED, Check, run_time
from hpcbridge.render.words import Var, Word, quote_argv

IMAGE = ResolvedImage("x", "sha256:" + "1" * 64, "/c/x.sif", "2" * 64)


def config(tmp: Path, site: str = "") -> Config:
    path = tmp / "site.toml"
    path.write_text(site, encoding="utf-8")
    env = {"HOME": str(tmp), "USER": "alice", "HPCBRIDGE_SITE_CONFIG": str(path)}
    return load_config(cwd=tmp, environ=env)


def job(tmp: Path, **data: Any) -> Any:
    base: dict[str, Any] = {"image": "docker://busybox", "command": ["true"]}
    base.update(data)
    return job_from_dict(base, job_dir=str(tmp))


# ------------------------------------------------------------- the launcher, in bash


def run_launcher(tmp: Path, env: dict[str, str]) -> runner.Completed:
    marks = {"rank": "hpcb_at_rank", "node": "hpcb_at_node", "env:TMPDIR": "hpcb_env_TMPDIR"}
    checks = [
        Check("exists", "binds[0].src = $TMPDIR/in", Word.of(Var("hpcb_env_TMPDIR"), "/in")),
        Check("mkdir", "binds[1].src = out/{rank}", Word.of(f"{tmp}/out/", Var("hpcb_at_rank"))),
    ]
    argv = launcher_argv(
        ["SLURM_"], ["HPCBRIDGE_TASK"], "APPTAINERENV_", run_time=run_time(marks, checks)
    )
    script = tmp / "launch.sh"
    script.write_text(
        "set -euo pipefail\n"
        "printf -v hpcb_env_TMPDIR '\\037%s\\037' env:TMPDIR\n"
        "printf -v hpcb_at_rank '\\037%s\\037' rank\n"
        "printf -v hpcb_at_node '\\037%s\\037' node\n"
        'export APPTAINERENV_CACHE=/c/"${hpcb_at_rank}"-"${hpcb_at_node}"\n'
        "export APPTAINERENV_LIT='a & b $x \\\\1 {rank}'\n"
        f"hpcb_launch=({quote_argv(argv)})\n"
        '"${hpcb_launch[@]}" /bin/bash -c \'printf "[%s]\\n" "$@"; env | grep ^APPTAINERENV_ | sort\' '
        'x "${hpcb_env_TMPDIR}"/in:/in "r${hpcb_at_rank}&{rank}"\n',
        encoding="utf-8",
    )
    return runner.run(
        ["bash", str(script)], env={"PATH": "/usr/bin:/bin", **env}, check=False, cwd=tmp
    )


def test_each_rank_replaces_its_marks(tmp_path: Path) -> None:
    (tmp_path / "t" / "in").mkdir(parents=True)
    env = {"TMPDIR": str(tmp_path / "t"), "SLURM_PROCID": "3", "SLURMD_NODENAME": "n7"}
    done = run_launcher(tmp_path, env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [f"[{tmp_path}/t/in:/in]", "[r3&{rank}]"]
    assert "APPTAINERENV_CACHE=/c/3-n7" in lines
    assert "APPTAINERENV_LIT=a & b $x \\\\1 {rank}" in lines  # user text is never touched
    assert (tmp_path / "out" / "3").is_dir()  # a writable per-rank source is created


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"SLURM_PROCID": "1", "HPCBRIDGE_TASK": "2"}, "task 2 rank 1 on n5: $TMPDIR is not set there"),
        ({"TMPDIR": "/nonexistent/x", "SLURM_PROCID": "0"},
         "task 0 rank 0 on n5: binds[0].src = $TMPDIR/in: /nonexistent/x/in does not exist"),
        ({"TMPDIR": "/a,b", "SLURM_PROCID": "0"}, "/a,b/in contains , or :"),
    ],
)  # fmt: skip
def test_a_failed_check_is_one_line_and_a_reason(
    tmp_path: Path, env: dict[str, str], line: str
) -> None:
    reason = tmp_path / "reason"
    done = run_launcher(tmp_path, {**env, "SLURMD_NODENAME": "n5", "HPCB_REASON_FILE": str(reason)})
    assert done.returncode == CHECK_FAILED
    assert done.stdout == ""
    assert done.stderr.splitlines() == ["hpcbridge: " + line] or line in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert reason.read_text().splitlines() == [done.stderr.splitlines()[0][len("hpcbridge: ") :]]


def test_the_script_records_the_reason_in_the_end_file(tmp_path: Path) -> None:
    """A job whose run-time source is missing: exit 66 and reason= in <task>.end."""
    outcomes = tmp_path / "outcomes"
    spec = job(tmp_path, binds=["$TMPDIR/missing:/m"], pre=["echo $NOT_SET_ANYWHERE"])
    script = render_job(
        spec, config(tmp_path), image=IMAGE, tracking=TrackingContext("s", str(outcomes))
    ).script
    path = tmp_path / "job.sh"
    path.write_text(script, encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apptainer").write_text("#!/bin/sh\necho RUNTIME-STARTED >&2\n")
    (bin_dir / "apptainer").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp_path), "SLURMD_NODENAME": "n1"}
    done = runner.run(["bash", str(path)], env=env, check=False, cwd=tmp_path)
    assert done.returncode == CHECK_FAILED, done.stderr
    assert "RUNTIME-STARTED" not in done.stderr  # the runtime never started
    assert "unbound variable" not in done.stderr  # pre runs with set +u
    end = (outcomes / "0.end").read_text().split()
    assert end[1:3] == ["66", "exit"]
    assert end[3] == "reason=task"
    assert f"{tmp_path}/missing does not exist" in (outcomes / "0.end").read_text()
    assert not list(outcomes.glob(".*"))  # the reason file is removed


def test_env_command_runs_on_the_node_and_fails_clearly(tmp_path: Path) -> None:
    spec = job(
        tmp_path,
        command=["sh", "-c", "true"],
        env_command={"MASTER_ADDR": "echo n1-of-$SLURM_JOB_NODELIST", "BAD": "exit 3"},
    )
    script = render_job(spec, config(tmp_path), image=IMAGE).script
    path = tmp_path / "job.sh"
    path.write_text(script, encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apptainer").write_text("#!/bin/sh\nenv | grep MASTER_ADDR\n")
    (bin_dir / "apptainer").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_NODELIST": "n[1-2]"}
    done = runner.run(["bash", str(path)], env=env, check=False, cwd=tmp_path)
    assert done.returncode == CHECK_FAILED
    assert done.stderr.strip().endswith("env_command.BAD failed (exit 3)")
    del_bad = job(tmp_path, command=["true"], env_command={"MASTER_ADDR": "echo n1"})
    path.write_text(render_job(del_bad, config(tmp_path), image=IMAGE).script, encoding="utf-8")
    done = runner.run(["bash", str(path)], env=env, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "APPTAINERENV_MASTER_ADDR=n1" in done.stdout


# ------------------------------------------------------------- the site's rules


def test_pmi_must_be_one_the_site_lists(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[mpi]\npmi_types = ["pmix", "pmi2", "none"]\n')
    validate_job(job(tmp_path, mpi={"type": "srun", "pmi": "none"}), cfg)
    with pytest.raises(JobSpecError, match="not a PMI type this site offers"):
        validate_job(job(tmp_path, mpi={"type": "srun", "pmi": "cray_shasta"}), cfg)
    with pytest.raises(JobSpecError, match=r"'pmi3' is not an srun MPI plugin .did you mean"):
        validate_job(job(tmp_path, mpi={"type": "srun", "pmi": "pmi3"}), config(tmp_path))
    with pytest.raises(ConfigError, match=r"mpi.pmi = 'pmix' is not a PMI type"):
        config(tmp_path, '[mpi]\npmi_types = ["cray_shasta"]\n')


def test_srun_options_and_flags_the_site_forbids(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, '[runtime]\ndeny_flags = ["--fakeroot"]\n[mpi]\nsrun_options = ["cpu-bind"]\n'
    )
    assert cfg.runtime.deny_flags == ("fakeroot",)
    ok = job(tmp_path, mpi={"type": "srun", "srun_options": ["--cpu-bind=cores"]})
    validate_job(ok, cfg)
    with pytest.raises(JobSpecError, match="does not allow srun --distribution"):
        validate_job(
            job(tmp_path, mpi={"type": "srun", "srun_options": ["--distribution=cyclic"]}), cfg
        )
    with pytest.raises(
        JobSpecError, match=r"apptainer.fakeroot: this site does not allow --fakeroot"
    ):
        validate_job(job(tmp_path, apptainer={"fakeroot": True}), cfg)
    with pytest.raises(JobSpecError, match=r"apptainer_env.APPTAINER_FAKEROOT"):
        validate_job(job(tmp_path, apptainer_env={"APPTAINER_FAKEROOT": "1"}), cfg)
    with pytest.raises(ConfigError, match="is not an Apptainer flag"):
        config(tmp_path, '[runtime]\ndeny_flags = ["fakerot"]\n')
    with pytest.raises(ConfigError, match="is set by hpcbridge itself"):
        config(tmp_path, '[mpi]\nsrun_options = ["export"]\n')


def test_missing_inputs_overlays_and_run_time_paths(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    (tmp_path / "a.txt").write_text("a")
    validate_job(job(tmp_path, inputs=["a.txt"]), cfg)
    with pytest.raises(JobSpecError, match=r"typo.txt' does not exist"):
        validate_job(job(tmp_path, inputs=["a.txt", "typo.txt"]), cfg)
    (tmp_path / "ov0.ext3").write_bytes(b"")
    with pytest.raises(JobSpecError, match=r"overlays\[0\] = '.*ov1.ext3' does not exist"):
        validate_job(job(tmp_path, array="0-1", overlays=["ov{task}.ext3:ro"]), cfg)
    # known only on the node: not checked here
    validate_job(job(tmp_path, binds=["$TMPDIR/x:/x"], overlays=["rank{rank}.ext3"]), cfg)
    with pytest.raises(JobSpecError, match="deny-list"):
        validate_job(job(tmp_path, binds=["/proc/$X:/x"]), cfg)


def test_singularity_reads_only_singularity_variables(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[runtime]\nflavor = "singularity"\n')
    spec = job(tmp_path, apptainer_env={"APPTAINER_CONTAINLIBS": "/l.so"})
    with pytest.raises(JobSpecError, match="SingularityCE reads only SINGULARITY_"):
        render_job(spec, cfg, image=IMAGE)


def test_runtime_version_decides_flags(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[runtime]\nversion = "1.2.5"\n')
    with pytest.raises(ConfigError, match=r"needs Apptainer >= 1.3"):
        render_job(job(tmp_path, apptainer={"sharens": True}), cfg, image=IMAGE)


# ------------------------------------------------------------- hpcbridge.toml


def test_a_job_file_named_hpcbridge_toml_is_a_job_not_the_project_config(tmp_path: Path) -> None:
    (tmp_path / "hpcbridge.toml").write_text('image = "docker://busybox"\ncommand = ["true"]\n')
    env = {"HOME": str(tmp_path), "USER": "alice", "HPCBRIDGE_SITE_CONFIG": os.devnull}
    cfg = load_config(cwd=tmp_path, environ=env)
    assert str(tmp_path / "hpcbridge.toml") not in cfg.layers
    assert any("is a job file" in w for w in cfg.warnings)
    spec = load_job(tmp_path / "hpcbridge.toml")
    assert spec.name == "hpcbridge" and spec.command == ("true",)


# ------------------------------------------------------------- status shows the reason


def test_status_shows_the_recorded_reason() -> None:
    from hpcbridge.tracking.outcomes import combine
    from hpcbridge.tracking.summary import task_status
    from hpcbridge.tracking.text import failure_text

    why = "task 3 rank 0 on n2: binds[0].src = $TMPDIR/stage: /tmp/j/stage does not exist"
    out = combine(3, "100 7 6 n2\n", f"101 66 exit mem_peak=4096 reason={why}\n")
    assert out is not None and out.reason == why and out.mem_peak == 4096
    st = task_status(
        3, 3, "6", is_array=True, outcome=out, info=None, query_ok=True,
        cancelled=False, time_limit=None,
    )  # fmt: skip
    assert st.reason == why
    assert failure_text(st) == f"task 3: failed, exit code 66, {why}, job 6_3"
    old = combine(4, "100 7 6 n2\n", "101 3 exit\n")  # an end file without a reason
    assert old is not None and old.reason is None


def test_doctor_refuses_a_missing_input(tmp_path: Path) -> None:
    from hpcbridge.doctor.job import check_job_rules

    spec = job(tmp_path, inputs=["typo.txt"])
    (finding,) = check_job_rules(spec, config(tmp_path))
    assert finding.status.name == "FAIL" and "typo.txt' does not exist" in finding.message
