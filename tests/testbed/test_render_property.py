"""Property: arbitrary argv elements, env values, bind paths and job names are either
refused with one clear line, or reach the process inside the container byte-exact.

Checked by RUNNING the rendered script under the real (unprivileged) Apptainer of
the testbed as the test user: each example batches several argv elements, env
values and a bind into one container start.  Job names go through Slurm (they
reach the process as SLURM_JOB_NAME).  Values are job-file templates, so the
expected value is the documented placeholder expansion (``{{`` -> ``{``,
``{task}`` -> 0); an unknown placeholder is a refusal.
"""

from __future__ import annotations

import json
import os
import shutil
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from hpcbridge.errors import HpcbridgeError
from hpcbridge.job.values import expand
from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

SPECIAL = [
    "a b", "it's", '"dq"', "$HOME", "${PATH}", "`id`", "$(id)", "\\", "\\n", "new\nline",
    "tab\there", "é ü 中 🙂", "*", "?", "-n", "--help", ";", "|", "&&", "#", "~", "a=b,c=d",
    ",", ":", "{task}", "{{x}}", "{tsk}", "}", "\r", " ", "", "\x7f", "\x01", "\x00",
]  # fmt: skip
texts = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.lists(st.sampled_from(SPECIAL), min_size=2, max_size=4).map("".join),
)
env_names = st.one_of(
    st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True),
    st.sampled_from(
        [
            "1BAD",
            "A-B",
            "HOME",
            "APPTAINER_X",
            "SLURM_MINE",
            "PATH",
            "",
            "LD_LIBRARY_PATH",
            "PWD",
            "EUID",
            "SHLVL",
            "IFS",
            "PREPEND_PATH",
            "LANG",
            "TERM",
            "OLDPWD",
        ]
    ),
)
dir_names = texts.filter(lambda t: t not in ("", ".", "..") and "/" not in t)


@pytest.fixture(scope="module")
def sif(testbed: Testbed) -> dict[str, Any]:
    ref = "docker://" + testbed.image("busybox").ref
    done = testbed.hpcbridge(
        "convert",
        ref,
        "--json",
        env=testbed.site_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return {"ref": ref, **json.loads(done.stdout)}


@pytest.fixture(scope="module")
def workdir(testbed: Testbed) -> Path:
    return testbed.user_dir("render-property")


def _lit(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _lit_path(text: str) -> str:
    """A bind source written literally: its ``$NAME`` is expanded on the node at run
    time (docs/jobs.md), ``$$`` is a literal ``$``."""
    return _lit(text).replace("$", "$$")


def _one_line(exc: HpcbridgeError) -> None:
    text = str(exc)
    assert text and "\n" not in text and "Traceback" not in text, repr(text)


def _chown_tree(tb: Testbed, top: Path) -> None:
    for root, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), tb.user.uid, tb.user.gid)
    os.chown(top, tb.user.uid, tb.user.gid)


#: more examples for a deeper run: HPCBRIDGE_PROPERTY_EXAMPLES=300
EXAMPLES = int(os.environ.get("HPCBRIDGE_PROPERTY_EXAMPLES", "25"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    args=st.lists(texts, max_size=4),
    env=st.dictionaries(env_names, texts, min_size=1, max_size=3),
    bind_name=dir_names,
)
def test_values_refused_or_byte_exact_in_container(
    testbed: Testbed,
    sif: dict[str, Any],
    workdir: Path,
    args: list[str],
    env: dict[str, str],
    bind_name: str,
) -> None:
    from hpcbridge.config import load_config, validate_job
    from hpcbridge.job.load import job_from_dict
    from hpcbridge.render import ResolvedImage, render_job

    case = Path(testbed.user_dir("prop"))
    try:
        host = case / "b" / bind_name
        try:
            host.mkdir(parents=True)
        except (OSError, ValueError):
            assume(False)
        (host / "marker").write_text("marker of " + bind_name, encoding="utf-8")
        (case / "out").mkdir()
        _chown_tree(testbed, case)
        environ = {**testbed.env, **testbed.site_env()}
        cfg = load_config({}, cwd=case, environ=environ)
        image = ResolvedImage(sif["ref"], sif["digest"], sif["path"], sif["sif_sha256"])
        dst = "/mnt/" + bind_name
        bind = {"src": _lit_path(str(host)), "dst": _lit(dst), "mode": "ro"}

        def accepted(extra: dict[str, Any]) -> bool:
            """Try one value alone: accepted, or refused with one clear line."""
            data = {"image": sif["path"], "command": ["true"], **extra}
            try:
                job = job_from_dict(data, job_dir=str(case))
                validate_job(job, cfg)
                render_job(job, cfg, image=image)
            except HpcbridgeError as exc:
                _one_line(exc)
                return False
            return True

        args = [a for a in args if accepted({"command": ["true", a]})]
        env = {n: v for n, v in env.items() if accepted({"env": {n: v}})}
        binds = [{"src": str(case / "out"), "dst": "/out"}]
        bind_ok = accepted({"binds": [bind]})
        if bind_ok:
            binds.append(bind)
        script = 'd=$1; shift; [ -d "$d" ] && cat "$d/marker" > /out/bind; '
        script += 'for a in "$@"; do printf "%s\\0" "$a"; done > /out/argv; '
        script += "cat /proc/$$/environ > /out/environ; "  # what the process got at exec
        data = {
            "name": "prop",
            "image": sif["path"],
            # the fixed parts are literal: job-file strings are templates ({{ -> {)
            "command": ["/bin/sh", "-c", _lit(script), "sh", _lit(dst), *args],
            "env": env,
            "binds": binds,
        }
        # every value was accepted alone, so all of them together must be too
        job = job_from_dict(data, job_dir=str(case))
        validate_job(job, cfg)
        rendered = render_job(job, cfg, image=image)
        path = case / "job.sh"
        path.write_text(rendered.script, encoding="utf-8")
        os.chown(path, testbed.user.uid, testbed.user.gid)
        done = testbed.run_as_user(["bash", str(path)], cwd=case, check=False, timeout=120)
        assert done.returncode == 0, done.stderr + rendered.script
        event(f"ran in the container with {len(args)} args, {len(env)} env, bind={bind_ok}")
        out = case / "out"
        got_args = (out / "argv").read_bytes().decode("utf-8").split("\0")[:-1]
        assert got_args == [expand(a, 0) for a in args]
        seen = dict(
            item.split("=", 1)
            for item in (out / "environ").read_bytes().decode("utf-8").split("\0")
            if item
        )
        for n in job.env:
            if n in ("PREPEND_PATH", "APPEND_PATH"):
                continue  # Apptainer instructions (they edit PATH), documented in docs/jobs.md
            want = expand(env[n], 0)
            if n == "LD_LIBRARY_PATH" and want:
                want += ":/.singularity.d/libs"  # Apptainer appends its library dir
            assert seen.get(n) == want, (n, seen.get(n), want)
        if bind_ok:
            assert (out / "bind").read_text(encoding="utf-8") == "marker of " + bind_name
    finally:
        shutil.rmtree(case, ignore_errors=True)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(
        st.one_of(texts, st.text(string.ascii_letters + "._+-", min_size=1, max_size=20)),
        min_size=4,
        max_size=6,
    )
)
def test_job_names_refused_or_exact_in_slurm_job_name(
    testbed: Testbed, sif: dict[str, Any], workdir: Path, names: list[str]
) -> None:
    from hpcbridge.config import load_config
    from hpcbridge.job.load import job_from_dict
    from hpcbridge.render import ResolvedImage, render_job

    environ = {**testbed.env, **testbed.site_env()}
    cfg = load_config({}, cwd=workdir, environ=environ)
    image = ResolvedImage(sif["ref"], sif["digest"], sif["path"], sif["sif_sha256"])
    submitted: dict[str, tuple[str, Path]] = {}
    for i, name in enumerate(names):
        data = {
            "name": name,
            "image": sif["path"],
            "command": ["/bin/sh", "-c", 'printf %s "$SLURM_JOB_NAME"'],
            "resources": {"time": "00:02:00"},
            "output": f"name-{i}-%j.out",
        }
        try:
            job = job_from_dict(data, job_dir=str(workdir))
            script = render_job(job, cfg, image=image).script
        except HpcbridgeError as exc:
            _one_line(exc)
            continue
        path = workdir / f"name-{i}.sh"
        path.write_text(script, encoding="utf-8")
        os.chown(path, testbed.user.uid, testbed.user.gid)
        job_id = testbed.sbatch(str(path), cwd=workdir)
        submitted[job_id] = (name, path)
    if not submitted:
        return
    testbed.wait_for_jobs(list(submitted), timeout=900)  # the queue may be busy
    for job_id, (name, path) in submitted.items():
        i = path.stem.split("-")[1]
        log = workdir / f"name-{i}-{job_id}.out"
        assert log.read_bytes().decode("utf-8") == name
