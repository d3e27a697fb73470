"""Bad-input corpus for job files: every case is one clear line naming the value and a fix.

RENDER's end-to-end corpus (tests/cli/test_bad_input*.py) runs the same kinds of
files through ``hpcbridge render``; this one pins the library-level messages.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbridge.errors import ExitCode, JobSpecError
from hpcbridge.job.load import load_job

IMG = 'image = "busybox"\n'
CMD = 'command = ["true"]\n'
BASE = IMG + CMD

# (id, job file text, --set items, substrings of the message, substring of the hint)
CASES: list[tuple[str, str, tuple[str, ...], tuple[str, ...], str]] = [
    ("unknown-top-key", BASE + 'imgae = "x"\n', (), ("unknown key 'imgae'",), "did you mean 'image'"),
    ("unknown-resources-key", BASE + "[resources]\npartiton = 'gpu'\n", (),
     ("unknown key 'resources.partiton'",), "did you mean 'partition'"),
    ("unknown-mpi-key", BASE + "[mpi]\ntype = 'srun'\npmix = 'x'\n", (), ("unknown key 'mpi.pmix'",), "pmi"),
    ("unknown-bind-key", BASE + "binds = [{src = '/tmp', dest = '/x'}]\n", (),
     ("unknown key 'binds[0].dest'",), "did you mean 'dst'"),
    ("unknown-set-key", BASE, ("resources.tiem=1",), ("unknown key 'resources.tiem'",), "did you mean 'time'"),
    ("set-without-equals", BASE, ("resources.time",), ("is not key=value",), "--set"),
    ("invalid-toml", 'image = busybox\n', (), ("invalid TOML",), "syntax"),
    ("no-image", CMD, (), ("no image",), "image ="),
    ("command-and-script", BASE + 'script = "echo"\n', (), ("both command and script",), "exactly one"),
    ("neither-command-nor-script", IMG, (), ("neither command nor script",), "command ="),
    ("command-is-string", IMG + 'command = "python3 run.py"\n', (),
     ("command = 'python3 run.py' is a string",), '["python3", "run.py"]'),
    ("empty-command", IMG + "command = []\n", (), ("command = []",), "e.g."),
    ("nul-in-argv", IMG + 'command = ["a\\u0000b"]\n', (), ("NUL",), "remove"),
    ("unknown-placeholder", IMG + 'command = ["echo", "{tsak}"]\n', (),
     ("command[1]", "unknown placeholder {tsak}"), "did you mean 'task'"),
    ("input-placeholder-without-inputs", IMG + 'command = ["cat", "{input}"]\n', (),
     ("placeholder {input} is not available here",), "placeholders here: task"),
    ("bad-format-spec", IMG + 'command = ["echo", "{task:xyz}"]\n', (), ("invalid format 'xyz'",), "{task:04d}"),
    ("newline-in-name", BASE + 'name = "a\\nb"\n', (), ("name = 'a\\nb'", "newline"), "letters, digits"),
    ("space-in-name", BASE + 'name = "my job"\n', (), ("name = 'my job'",), "letters, digits"),
    ("long-name", BASE + f'name = "{"x" * 200}"\n', (), ("200 characters",), "at most 128"),
    ("bad-time", BASE + "[resources]\ntime = '25 hours'\n", (), ("resources.time = '25 hours'",), "HH:MM:SS"),
    ("time-bad-form", BASE + "[resources]\ntime = '1-30:00:00:00'\n", (), ("'1-30:00:00:00'",), "D-HH:MM:SS"),
    ("mem-and-mem-per-cpu", BASE + "[resources]\nmem = '4G'\nmem_per_cpu = '1G'\n", (),
     ("mem and resources.mem_per_cpu are both set",), "keep one"),
    ("bad-mem", BASE + "[resources]\nmem = '4 gigs'\n", (), ("resources.mem = '4 gigs'",), "500M"),
    ("zero-nodes", BASE + "[resources]\nnodes = 0\n", (), ("resources.nodes = 0",), "e.g."),
    ("string-cpus", BASE + "[resources]\ncpus_per_task = '4'\n", (), ("resources.cpus_per_task = '4'",), "e.g."),
    ("set-int-not-number", BASE, ("resources.nodes=two",), ("resources.nodes='two'",), "--set"),
    ("tasks-do-not-fit", BASE + "[resources]\nnodes = 2\nntasks_per_node = 2\nntasks = 8\n", (),
     ("ntasks = 8 does not fit",), "raise nodes"),
    ("gpus-twice", BASE + "[resources]\ngpus = 2\ngres = 'gpu:2'\n", (), ("GPUs requested twice",), "keep one"),
    ("bad-gres", BASE + "[resources]\ngres = 'gpu 2'\n", (), ("resources.gres = 'gpu 2'",), "gpu:2"),
    ("gpu-count-disagrees", BASE + "[resources]\ngpus = 2\n[gpu]\ncount = 4\n", (),
     ("gpu.count = 4 disagrees",), "keep one"),
    ("bad-gpu-vendor", BASE + "[gpu]\nvendor = 'nvida'\n", (), ("gpu.vendor = 'nvida'",), "did you mean 'nvidia'"),
    ("invalid-array", BASE + 'array = "10-1"\n', (), ("array = '10-1'", "ends before it starts"), "1-10"),
    ("array-bad-throttle", BASE + 'array = "0-9%0"\n', (), ("invalid throttle",), "positive"),
    ("array-vs-inputs", BASE + 'inputs = ["a", "b"]\narray = "0-5"\n', (),
     ("goes up to task 5 but there are 2 inputs",), "0-1"),
    ("throttle-only-without-inputs", BASE + 'array = "%4"\n', (), ("only a throttle",), "0-99%10"),
    ("inputs-and-inputs-file", BASE + 'inputs = "*.x"\ninputs_file = "l.txt"\n', (),
     ("both inputs and inputs_file",), "keep one"),
    ("inputs-glob-matches-nothing", BASE + 'inputs = "nothing/*.csv"\n', (),
     ("inputs = 'nothing/*.csv' matches nothing",), "relative to the job file"),
    ("inputs-file-missing", BASE + 'inputs_file = "missing.txt"\n', (),
     ("inputs_file = 'missing.txt'", "does not exist"), "check the path"),
    ("relative-bind-destination", BASE + 'binds = ["/tmp:data"]\n', (),
     ("binds[0].dst = 'data' is not an absolute container path",), "/data"),
    ("bind-too-many-colons", BASE + 'binds = ["/a:/b:ro:x"]\n', (), ("more than src:dst:options",), "table"),
    ("bind-bad-mode", BASE + 'binds = ["/a:/b:readonly"]\n', (), ("'readonly' is not a bind option",), "ro"),
    ("bind-comma-in-dst", BASE + 'binds = [{src = "/a", dst = "/b,c"}]\n', (), ("contains ':' or ','",), "another"),
    ("bind-dst-twice", BASE + 'binds = ["/a:/x", "/b:/x"]\n', (), ("already bound by binds[0]",), "own destination"),
    ("bind-no-src", BASE + 'binds = [{dst = "/x"}]\n', (), ("binds[0] has no src",), "src ="),
    ("relative-workdir", BASE + 'workdir = "work"\n', (), ("workdir = 'work' is not an absolute",), "/work"),
    ("invalid-env-name", BASE + '[env]\n"1BAD" = "x"\n', (), ("env name '1BAD'",), "letters, digits"),
    ("env-name-with-dash", BASE + '[env]\n"MY-VAR" = "x"\n', (), ("env name 'MY-VAR'",), "letters"),
    ("env-home", BASE + '[env]\nHOME = "/x"\n', (), ("env name 'HOME' cannot be set",), "refuses"),
    ("env-apptainer-prefix", BASE + '[env]\nAPPTAINER_BIND = "/x"\n', (), ("'APPTAINER_BIND'",), "reserved"),
    ("env-bool-value", BASE + "[env]\nDEBUG = true\n", (), ("env.DEBUG = True",), "quote it"),
    ("unknown-mpi-type", BASE + '[mpi]\ntype = "openmpi"\n', (), ("mpi.type = 'openmpi' is not valid",), "srun"),
    ("bad-pmi", BASE + '[mpi]\ntype = "srun"\npmi = "PMI-3"\n', (), ("mpi.pmi = 'PMI-3'",), "pmix"),
    ("pmi-with-mpirun", BASE + '[mpi]\ntype = "mpirun"\npmi = "pmix"\n', (), ("applies only to type = \"srun\"",), "srun"),
    ("bind-model-without-dir", BASE + '[mpi]\ntype = "srun"\nmodel = "bind"\n', (), ("needs mpi.host_mpi_dir",), "host MPI"),
    ("relative-host-mpi-dir", BASE + '[mpi]\ntype = "srun"\nmodel = "bind"\nhost_mpi_dir = "opt"\n', (),
     ("host_mpi_dir = 'opt' is not absolute",), "absolute"),
    ("openmpi-with-pmi2", BASE + '[mpi]\ntype = "srun"\npmi = "pmi2"\nflavor = "openmpi"\n', (),
     ("does not work",), "pmix"),
    ("mpich-with-pmix", BASE + '[mpi]\ntype = "srun"\npmi = "pmix"\nflavor = "mpich"\n', (),
     ("does not work",), "pmi2"),
    ("extra-sbatch-no-dashes", BASE + 'extra_sbatch = ["#SBATCH --mail-type=END"]\n', (),
     ("does not start with --",), "--mail-type=END"),
    ("extra-sbatch-newline", BASE + 'extra_sbatch = ["--a=1\\n--b=2"]\n', (), ("contains a newline",), "one line"),
    ("extra-sbatch-duplicates-field", BASE + 'extra_sbatch = ["--time=10"]\n', (), ("sets --time",), "resources.time"),
    ("bad-dependency-type", BASE + 'dependencies = ["afterfoo:12"]\n', (), ("type = 'afterfoo'",), "afterok"),
    ("bad-dependency-id", BASE + 'dependencies = ["afterok:12;rm"]\n', (), ("'12;rm' is not a job",), "hpcbridge list"),
    ("bad-signal", BASE + 'signal = "USR9@60"\n', (), ("signal = 'USR9@60'",), "USR1"),
    ("requeue-not-bool", BASE + 'requeue = "yes"\n', (), ("requeue = 'yes'",), "true"),
    ("output-placeholder", BASE + 'output = "log_{task}.out"\n', (), ("placeholder {task} is not available",), "no placeholders"),
    ("top-level-key-under-a-table", '[mpi]\ntype = "srun"\n' + BASE, (),
     ("unknown key 'mpi.image'", "is a top-level key but stands under [mpi]"), "above the first [table]"),
    ("module-with-space", BASE + 'modules = ["gcc openmpi"]\n', (), ("modules[0]",), "one module"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "sets", "needles", "hint"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_job_is_one_clear_line(
    tmp_path: Path, text: str, sets: tuple[str, ...], needles: tuple[str, ...], hint: str
) -> None:
    path = tmp_path / "job.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(JobSpecError) as info:
        load_job(path, sets)
    err = info.value
    line = str(err)
    assert "\n" not in line, line
    assert line.startswith(f"{path}: ")
    for needle in needles:
        assert needle in err.message, (needle, line)
    assert err.hint and hint in err.hint, (hint, line)
    assert err.exit_code == ExitCode.INPUT


def test_corpus_is_large_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


def test_missing_job_file(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match="does not exist"):
        load_job(tmp_path / "nope.toml")


def test_job_file_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(JobSpecError, match="is a directory"):
        load_job(tmp_path)


def test_job_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_bytes(b'image = "\xff"\n')
    with pytest.raises(JobSpecError):
        load_job(path)
