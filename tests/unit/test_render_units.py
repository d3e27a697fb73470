"""Unit tests of the pure render pieces: quoting, placeholders, binds, launcher, header.

Shell behaviour is checked by running bash (through hpcbridge.runner) on the
generated text, not by comparing strings.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from hpcbridge import runner
from hpcbridge.errors import ConfigError, JobSpecError
from hpcbridge.job.values import expand, input_fields
from hpcbridge.render.apptainer import BindArg, ContainerCall, bind_args, build_argv
from hpcbridge.render.header import sbatch_value
from hpcbridge.render.launcher import launcher_argv, split_allow
from hpcbridge.render.placeholders import TaskVars, printf_format
from hpcbridge.render.words import Var, Word, quote_argv, shquote

NASTY = [
    "plain",
    "a b",
    "it's",
    '"dq"',
    "$HOME",
    "`id`",
    "\\x",
    "new\nline",
    "é ü 中",
    "",
    "*",
    "-n",
]


def bash(code: str, env: dict[str, str] | None = None) -> str:
    return runner.run(["bash", "-c", code], env=env or {"PATH": "/usr/bin:/bin"}).stdout


def test_shquote_round_trips_through_bash() -> None:
    line = quote_argv(NASTY)
    out = bash(f"for a in {line}; do printf '%s\\0' \"$a\"; done")
    assert out.split("\0")[:-1] == NASTY


def test_word_expands_variables_inside_one_word() -> None:
    w = Word.of("/out/", Var("v"), " it's.txt")
    out = bash(f"v='a b*'; printf '%s|' {shquote(w)}")
    assert out == "/out/a b* it's.txt|"


def test_shquote_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        shquote(3.5)
    with pytest.raises(TypeError):
        shquote(True)


@pytest.mark.parametrize("spec", ["04d", "d", "5", ">6", "<6", "+d", " d", "x", "X", "o", "08x"])
def test_printf_formats_match_python(spec: str) -> None:
    fmt = printf_format(spec, "command")
    values = [0, 7, 42, 1000, 123456]
    out = bash("; ".join(f"printf {shlex.quote(fmt)}'|' {v}" for v in values))
    assert out == "".join(format(v, spec) + "|" for v in values)


@pytest.mark.parametrize("spec", ["<05d", "#o", "#x", ",d", ".3", "*^9", "b", "e"])
def test_printf_refuses_specs_without_exact_equivalent(spec: str) -> None:
    with pytest.raises(JobSpecError) as err:
        printf_format(spec, "command[1]")
    assert spec in str(err.value)


def test_task_vars_reuse_one_variable_per_format() -> None:
    tv = TaskVars()
    a = tv.word("/o/{task:04d}", "a")
    b = tv.word("{task:04d}-{task}", "b")
    assert isinstance(a, Word) and isinstance(b, Word)
    assert tv.formats == {"hpcb_task_1": "%04d"}
    assert b.variables() == ("hpcb_task_1", "hpcb_task")
    assert tv.word("{{literal}}", "c") == "{literal}"


def test_input_fields_refuse_format_specs() -> None:
    with pytest.raises(JobSpecError, match=r"only \{task\} takes a format"):
        TaskVars().word("{input:>9}", "command[0]")


@pytest.mark.parametrize(
    ("name", "input_name", "stem"),
    [
        ("a.txt", "a.txt", "a"),
        ("a.tar.gz", "a.tar.gz", "a.tar"),
        (".bashrc", ".bashrc", ".bashrc"),
        ("..a.b", "..a.b", "..a"),
        ("a.", "a.", "a"),
        ("dir/", "dir", "dir"),
        ("noext", "noext", "noext"),
    ],
)
def test_input_fields(name: str, input_name: str, stem: str) -> None:
    path = f"/data/{name}"
    want = {"input": path, "input_name": input_name, "input_stem": stem}
    assert input_fields(path) == want
    for field, value in want.items():
        assert expand("{" + field + "}", 0, path) == value


def test_plain_binds_use_dash_b() -> None:
    assert bind_args(BindArg("/data", "/data", True), "apptainer") == ["-B", "/data:/data:ro"]


def test_odd_binds_use_csv_quoted_mount() -> None:
    out = bind_args(BindArg('/a,b:c"d', "/mnt/x", False), "apptainer")
    assert out[0] == "--mount"
    assert out[1] == 'type=bind,"source=/a,b:c""d","destination=/mnt/x"'


def test_caret_paths_use_mount() -> None:
    # Apptainer 1.4.5 -B treats ^ specially (found by the property test): use --mount
    assert bind_args(BindArg("/d/a^b", "/d/a^b"), "apptainer")[0] == "--mount"


def test_per_task_input_binds_use_mount_with_variables() -> None:
    word = Word.of(Var("hpcb_input"))
    out = bind_args(BindArg(word, "/in", True), "apptainer")
    assert out[0] == "--mount"
    text = bash(f"hpcb_input='/d/a,b c'; printf '%s' {shquote(out[1])}")
    assert text == 'type=bind,"source=/d/a,b c","destination=/in",ro'


def test_per_task_index_binds_stay_dash_b() -> None:
    out = bind_args(BindArg(Word.of("/r/", Var("hpcb_task_1")), "/out"), "apptainer")
    assert out[0] == "-B"


@pytest.mark.parametrize(
    ("src", "dst", "flavor", "needle"),
    [
        ("data", "/d", "apptainer", "not an absolute path"),
        ("/d", "rel", "apptainer", "not an absolute path"),
        ("/a\nb", "/d", "apptainer", "line break"),
        ("/a,b", "/d", "singularity", "SingularityCE"),
    ],
)
def test_bad_binds_are_refused(src: str, dst: str, flavor: str, needle: str) -> None:
    with pytest.raises(JobSpecError, match=needle):
        bind_args(BindArg(src, dst), flavor)


def test_argv_order_and_gpu_flags() -> None:
    call = ContainerCall(
        image="/c/i.sif",
        command=("prog", "--nv"),
        version="1.4.5",
        binds=(BindArg("/d", "/d"),),
        pwd="/w",
        gpu="nvidia",
        global_flags=("--quiet",),
    )
    argv = build_argv(call)
    assert argv == [
        "apptainer", "--quiet", "exec", "--cleanenv", "--no-eval", "--nv",
        "-B", "/d:/d", "--pwd", "/w", "/c/i.sif", "prog", "--nv",
    ]  # fmt: skip
    amd = build_argv(ContainerCall(image="/i.sif", command=("x",), gpu="amd"))
    assert "--rocm" in amd


def test_old_apptainer_gets_no_no_eval_and_site_flags_are_checked() -> None:
    argv = build_argv(ContainerCall(image="/i.sif", command=("x",), version="1.0.3"))
    assert "--no-eval" not in argv
    with pytest.raises(ConfigError, match=r"1\.3"):
        build_argv(
            ContainerCall(
                image="/i.sif", command=("x",), version="1.2.0", extra_options=("--cwd=/x",)
            )
        )


def test_launcher_forwards_per_task_values_byte_exact() -> None:
    argv = launcher_argv(
        ["SLURM_", "PMI", "MYSITE_"], ["CUDA_VISIBLE_DEVICES", "FOO"], "APPTAINERENV_"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "SLURM_PROCID": "3",
        "PMIX_RANK": "3",
        "PMI_FD": "7",
        "MYSITE_X": "a,b=c\nd $HOME `x`",
        "CUDA_VISIBLE_DEVICES": "0,1",
        "FOO": "",
        "OTHER": "not forwarded",
        "APPTAINERENV_SLURM_PROCID": "set by the job",
    }
    out = runner.run([*argv, "env", "-0"], env=env).stdout
    got = dict(item.split("=", 1) for item in out.split("\0") if item)
    assert got["APPTAINERENV_MYSITE_X"] == "a,b=c\nd $HOME `x`"
    assert got["APPTAINERENV_PMIX_RANK"] == "3"
    assert got["APPTAINERENV_PMI_FD"] == "7"
    assert got["APPTAINERENV_CUDA_VISIBLE_DEVICES"] == "0,1"
    assert got["APPTAINERENV_FOO"] == ""
    assert got["APPTAINERENV_SLURM_PROCID"] == "set by the job"  # job's own value wins
    assert "APPTAINERENV_OTHER" not in got
    assert "APPTAINERENV_PATH" not in got


def test_launcher_binds_the_pmix_server_dir(tmp_path: Path) -> None:
    argv = launcher_argv(["SLURM_"], [], "APPTAINERENV_", ["PMIX_SERVER_TMPDIR"])
    pmix = tmp_path / "spool dir" / "pmix.7.0"
    pmix.mkdir(parents=True)
    base = {"PATH": "/usr/bin:/bin"}
    show = [*argv, "sh", "-c", 'printf %s "${APPTAINER_BIND-unset}"']
    env = {**base, "PMIX_SERVER_TMPDIR": f"{pmix}/", "APPTAINER_BIND": "/x"}
    assert runner.run(show, env=env).stdout == f"/x,{pmix}"
    assert runner.run(show, env={**base, "PMIX_SERVER_TMPDIR": f"{pmix}"}).stdout == str(pmix)
    missing = {**base, "PMIX_SERVER_TMPDIR": str(tmp_path / "nope")}
    assert runner.run(show, env=missing).stdout == "unset"
    assert runner.run(show, env=base).stdout == "unset"


def test_allow_list_entries() -> None:
    assert split_allow(["A", "B_*"]) == (["B_"], ["A"])
    with pytest.raises(ConfigError, match="not a variable name"):
        split_allow(["1BAD"])


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("debug", "debug"),
        ("my job", '"my job"'),
        ('a"b', '"a\\"b"'),
        ("x#y", '"x#y"'),
    ],
)
def test_sbatch_values_are_quoted_for_sbatch(value: str, want: str) -> None:
    assert sbatch_value(value, "k") == want


@pytest.mark.parametrize("value", ["a\nb", "myhetjob", "PackJob"])
def test_sbatch_values_refused(value: str) -> None:
    with pytest.raises(JobSpecError):
        sbatch_value(value, "k")


def test_templates_found_in_repo_or_package() -> None:
    from hpcbridge.render.environment import builtin_template_dir

    assert (builtin_template_dir() / "job.sh.j2").is_file()


def test_site_template_dir_is_searched_first(tmp_path: Path) -> None:
    from hpcbridge.render.environment import render_template

    (tmp_path / "_header.sh.j2").write_text("#!/bin/bash\n# site header {{ sbatch|length }}\n")
    from hpcbridge.render import render_job
    from tests.golden.support import golden_config, image_for, load_case

    cfg = golden_config(tmp_path / "c", **{"templates.dir": str(tmp_path)})
    job = load_case("plain")
    script = render_job(job, cfg, image=image_for(job)).script
    assert script.startswith("#!/bin/bash\n# site header ")
    assert "hpcb_container=(" in script
    with pytest.raises(ConfigError, match="not found"):
        render_template("nope.sh.j2", {}, str(tmp_path))


def test_strict_undefined_in_site_templates(tmp_path: Path) -> None:
    from hpcbridge.render.environment import render_template

    (tmp_path / "x.sh.j2").write_text("{{ no_such_value }}")
    with pytest.raises(ConfigError, match="no_such_value"):
        render_template("x.sh.j2", {}, str(tmp_path))


# ------------------------------------------------------------------ render_job semantics


def _render(tmp_path: Path, name: str, sets: tuple[str, ...] = (), **kw: object) -> str:
    from hpcbridge.render import render_job
    from tests.golden.support import golden_config, image_for, load_case

    job = load_case(name, sets)
    return render_job(job, golden_config(tmp_path), image=image_for(job), **kw).script  # type: ignore[arg-type]


def test_array_chunk_offsets_and_inputs(tmp_path: Path) -> None:
    from hpcbridge.render import ArrayChunk, render_job
    from tests.golden.support import golden_config, image_for, load_case

    job = load_case("array-inputs")
    r = render_job(job, golden_config(tmp_path), image=image_for(job), chunk=ArrayChunk(1, "0-1"))
    assert r.array == "0-1%2"  # the job's throttle carries over
    assert r.task_ids == (1, 2)
    assert "hpcb_task=$(( ${SLURM_ARRAY_TASK_ID:-0} + 1 ))" in r.script
    assert "[0]=" not in r.script  # only this chunk's inputs are embedded
    # the embedded arrays give each global task its input
    out = bash(
        r.script.split("# ---- per-task values")[1].split("# ---- modules")[0]
        + 'printf "%s|%s" "$hpcb_input" "$hpcb_input_stem"',
        env={"PATH": "/usr/bin:/bin", "hpcb_task": "2"},
    )
    assert out == "/home/alice/project/inputs/delta,x.txt|delta,x"


def test_chunk_outside_the_array_is_refused(tmp_path: Path) -> None:
    from hpcbridge.render import ArrayChunk

    with pytest.raises(JobSpecError, match="task 5"):
        _render(tmp_path, "array-inputs", chunk=ArrayChunk(5, "0"))


def test_gpu_on_partition_without_gpus(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match="'cpu'"):
        _render(tmp_path, "gpu-nvidia", ("resources.partition=cpu",))


def test_gpu_request_styles(tmp_path: Path) -> None:
    from hpcbridge.render import render_job
    from tests.golden.support import golden_config, image_for, load_case

    job = load_case("gpu-nvidia")
    cfg = golden_config(tmp_path, **{"gpu.request": "gpus"})
    script = render_job(job, cfg, image=image_for(job)).script
    assert "#SBATCH --gpus-per-node=2" in script and "--gres" not in script


def test_time_above_partition_maximum(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match="above the maximum"):
        _render(tmp_path, "plain", ("resources.time=3-00:00:00",))


def test_known_bad_pairing_from_site_default(tmp_path: Path) -> None:
    from hpcbridge.render import render_job
    from tests.golden.support import golden_config, image_for, load_case

    job = load_case("mpi-mpich-pmi2")
    cfg = golden_config(tmp_path, **{"mpi.mpich_pmi": "pmix"})
    with pytest.raises(JobSpecError, match="1-rank"):
        render_job(job, cfg, image=image_for(job))


def test_script_jobs_run_through_sh(tmp_path: Path) -> None:
    import dataclasses

    from hpcbridge.render import render_job
    from tests.golden.support import golden_config, image_for, load_case

    job = dataclasses.replace(load_case("plain"), command=None, script='echo "$HPCBRIDGE_TASK"')
    script = render_job(job, golden_config(tmp_path), image=image_for(job)).script
    assert "  /bin/sh -c 'echo \"$HPCBRIDGE_TASK\"' hpcb-script\n" in script


def test_outcome_section_only_with_tracking(tmp_path: Path) -> None:
    from hpcbridge.render import TrackingContext

    plain = _render(tmp_path, "plain")
    assert "hpcb_record() { :; }" in plain and "--comment" not in plain
    tracked = _render(tmp_path, "plain", tracking=TrackingContext("s1", "/o/d"))
    assert "hpcb_outcomes=/o/d" in tracked and "#SBATCH --comment=hpcb:s1" in tracked


def test_rendered_script_records_outcomes_and_signals(tmp_path: Path) -> None:
    """Run the outcome machinery of a real script with a stand-in runtime on PATH."""
    from hpcbridge.render import TrackingContext

    outcomes = tmp_path / "outcomes"
    script = _render(tmp_path, "plain", tracking=TrackingContext("s1", str(outcomes)))
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "apptainer").write_text('#!/bin/sh\nexec sleep "${FAKE_SLEEP:-0}"\n')
    (bindir / "apptainer").chmod(0o755)
    (bindir / "module").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "module").chmod(0o755)
    path = tmp_path / "job.sh"
    path.write_text(script)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "SLURM_JOB_ID": "77", "PWD": str(tmp_path)}
    runner.run(["bash", str(path)], env=env, cwd=tmp_path)
    end = (outcomes / "0.end").read_text().split()
    assert end[1:] == ["0", "exit"]
    start = (outcomes / "0.start").read_text().split()
    assert start[1:3] == ["77", "-"]
    # a TERM while the command runs: recorded at once as signal:TERM, exit 143
    import shutil
    import signal
    import time

    shutil.rmtree(outcomes)
    proc = runner.spawn(["bash", str(path)], env={**env, "FAKE_SLEEP": "30"}, cwd=tmp_path)
    deadline = time.monotonic() + 20
    while not (outcomes / "0.start").exists():
        assert time.monotonic() < deadline, "the script never started"
        time.sleep(0.05)
    time.sleep(0.3)  # the command is running in the background now
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=20, check=False) == 143
    assert (outcomes / "0.end").read_text().split()[1:] == ["143", "signal:TERM"]


def test_old_runtime_without_no_eval_refuses_evaluated_env_values(tmp_path: Path) -> None:
    from hpcbridge.render import render_job
    from tests.golden.support import golden_config, image_for, load_case

    job = load_case("plain")  # env.GREETING holds $HOME and backticks
    cfg = golden_config(tmp_path, **{"runtime.version": "1.0.3"})
    with pytest.raises(JobSpecError, match="GREETING"):
        render_job(job, cfg, image=image_for(job))
    ok = load_case("plain", ("env.GREETING=plain text",))
    script = render_job(ok, cfg, image=image_for(ok)).script
    assert "  --no-eval\n" not in script
