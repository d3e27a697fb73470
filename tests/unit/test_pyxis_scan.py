"""Finding a script's srun steps and their options at submit time (the shell lexer and scan)."""

from __future__ import annotations

import pytest

from hpcbridge.errors import InputError
from hpcbridge.pyxis.scan import UNKNOWN, scan_script
from hpcbridge.pyxis.shell import Lit, Param, Unknown, commands
from hpcbridge.pyxis.steps import find_steps


def steps(
    text: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    return [s.argv for s in scan_script(text, environ=env or {}, cwd="/job", args=args).steps]


def test_lexer_words_quotes_and_expansions() -> None:
    (cmd,) = commands("srun --a='x y' \"$B\" ${C:-d e} $(date) `id` $'t\\tab' \\$x # comment\n")
    assert cmd.words == [
        (Lit("srun"),),
        (Lit("--a="), Lit("x y", True)),
        (Param("B", True),),
        (Param("C", False, None, ":-", (Lit("d e", True),)),),
        (Unknown("$(date)"),),
        (Unknown("`id`"),),
        (Lit("t\tab", True),),
        (Lit("$", True), Lit("x")),
    ]


def test_lexer_separators_redirections_heredocs_and_continuations() -> None:
    text = (
        "cat <<'EOF' > conf.txt\nsrun --container-image=not-a-step\nEOF\n"
        "srun -n1 \\\n  hostname 2>&1 | tee log && echo ok; srun true &\n"
        "(cd sub && srun pwd)\n"
    )
    words = [
        [("".join(s.text for s in w if isinstance(s, Lit))) for w in c.words]
        for c in commands(text)
    ]
    assert words == [
        ["cat"],
        ["srun", "-n1", "hostname"],
        ["tee", "log"],
        ["echo", "ok"],
        ["srun", "true"],
        ["cd", "sub"],
        ["srun", "pwd"],
    ]


def test_arrays_strings_variables_and_loops() -> None:
    text = """#!/bin/bash
IMAGE="nvcr.io#nvidia/pytorch:24.01-py3"
ARGS=(--container-image="$IMAGE"
      --container-mounts="$PWD":/workspace)   # a comment
ARGS+=(--container-workdir=/workspace)
COMMON="--mpi=pmix --ntasks-per-node=8"
srun $COMMON "${ARGS[@]}" python train.py
for tag in 1.35 1.36; do srun --container-image=busybox:$tag true; done
export PYXIS_CONTAINER_IMAGE=ubuntu:24.04
"""
    assert steps(text) == [
        ("--mpi=pmix", "--ntasks-per-node=8", "--container-image=nvcr.io#nvidia/pytorch:24.01-py3",
         "--container-mounts=/job:/workspace", "--container-workdir=/workspace", "python", "train.py"),
        ("--container-image=busybox:1.35", "true"),
        ("--container-image=busybox:1.36", "true"),
    ]  # fmt: skip


def test_defaults_environment_arguments_and_run_time_values() -> None:
    text = (
        'IMG=${IMG:-default:1}\nsrun --container-image="$IMG" --container-name="$1" '
        "--container-mounts=/scratch/$USER:/s --container-save=/t/$SLURM_JOB_ID.sqsh x\n"
    )
    env_given = steps(text, {"IMG": "from-env:2", "USER": "alice"}, ("dev",))
    assert env_given[0][:3] == (
        "--container-image=from-env:2",
        "--container-name=dev",
        "--container-mounts=/scratch/alice:/s",
    )
    assert UNKNOWN in env_given[0][3]  # only the job knows its id
    assert steps(text)[0][0] == "--container-image=default:1"


def test_wrappers_eval_and_bash_c() -> None:
    text = (
        'SRUN="srun --overlap"\n$SRUN --container-image=a:1 hostname\n'
        "timeout 600 srun --container-image=b:1 x\n"
        "env FOO=1 srun --container-image=c:1 y\n"
        "eval srun --container-image=d:1 z\n"
        "bash -c 'srun --container-image=e:1 w'\n"
        "PYXIS_CONTAINER_IMAGE=f:1 srun true\n"
    )
    found = scan_script(text, environ={}, cwd="/job")
    images = [u.value for u in find_steps(found, {}).images]
    assert images == ["a:1", "b:1", "c:1", "d:1", "e:1", "f:1"]
    assert found.steps[0].argv[0] == "--overlap"


def test_cd_changes_what_relative_paths_are_relative_to() -> None:
    found = scan_script(
        "cd /data/run\nsrun --container-image=./img.sqsh x\n", environ={}, cwd="/job"
    )
    (use,) = find_steps(found, {}).images
    assert (use.value, use.cwd) == ("./img.sqsh", "/data/run")


def test_find_steps_checks_exact_lines_and_notes_the_others() -> None:
    bad = "srun --container-image=x:1 --container-mounts=tmpfs:/t true\n"
    with pytest.raises(InputError) as err:
        find_steps(scan_script(bad, environ={}, cwd="/job"), {})
    assert err.value.message.startswith("script line 1: --container-mounts entry 'tmpfs:/t'")
    later = "srun --container-image=$(cat image.txt) true\nsrun hostname\n"
    found = find_steps(scan_script(later, environ={}, cwd="/job"), {})
    assert found.images == [] and found.container_lines == [1]
    assert found.notes[0].startswith("script line 1: srun's container options are only known")


def test_steps_without_containers_are_not_container_steps() -> None:
    found = find_steps(
        scan_script("srun -N2 hostname\nsrun --mpi=pmix ./app\n", environ={}, cwd="/j"), {}
    )
    assert found.container_lines == [] and found.images == []
    with_env = find_steps(
        scan_script("srun hostname\n", environ={}, cwd="/j"), {"PYXIS_CONTAINER_IMAGE": "u:1"}
    )
    assert [u.value for u in with_env.images] == ["u:1"]


def test_saves_are_known() -> None:
    text = "srun --container-image=a:1 --container-save=./out.sqsh true\nsrun --container-image=./out.sqsh x\n"
    found = find_steps(scan_script(text, environ={}, cwd="/job"), {})
    assert found.saves == ["/job/out.sqsh"]
    assert [u.value for u in found.images] == ["a:1", "./out.sqsh"]
