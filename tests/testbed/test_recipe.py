"""Definition files from ``hpcbridge recipe`` built and run by the real Apptainer 1.4.5.

As the non-root test user: ``apptainer build`` of the generated .def (rootless,
root-mapped user namespace) from the testbed registry's busybox image, then
``apptainer run`` with awkward arguments to show the runscript's quoting, the
ADD archive extraction, exported ENV and the labels all survive.  The Dockerfile
written back by ``--to docker`` is checked the same way by translating it once
more and building that.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "recipes"
ARGS = ["a b", "$x", "it's", "", "*", 'q"uote', "back\\slash"]


def _prepare(tb: Testbed, user_dir: Path) -> None:
    for name in ("Dockerfile", "greet.sh", "data.tar.gz"):
        shutil.copy2(GOLDEN / "app" / name, user_dir / name)
    shutil.copytree(GOLDEN / "app" / "conf", user_dir / "conf")
    for p in (user_dir / "conf").iterdir():
        shutil.chown(p, tb.user.uid, tb.user.gid)
    ref = tb.image("busybox").ref
    text = (user_dir / "Dockerfile").read_text()
    text = re.sub(r"^FROM .*$", f"FROM {ref} AS app", text, count=1, flags=re.M)
    (user_dir / "Dockerfile").write_text(text)
    shutil.chown(user_dir / "Dockerfile", tb.user.uid, tb.user.gid)
    for p in user_dir.iterdir():
        shutil.chown(p, tb.user.uid, tb.user.gid)


def _build(tb: Testbed, user_dir: Path, deffile: str, sif: str) -> None:
    tb.run_as_user(
        [str(tb.apptainer), "build", "--no-https", sif, deffile], cwd=user_dir, timeout=300
    )


def _run(tb: Testbed, user_dir: Path, sif: str, *args: str) -> list[str]:
    done = tb.run_as_user([str(tb.apptainer), "run", sif, *args], cwd=user_dir)
    return done.stdout.splitlines()


def _expected(args: list[str]) -> list[str]:
    return [
        "[it's]",
        '[a $HOME "quoted" arg]',
        *(f"[{a}]" for a in args),
        "hello world",
        "single quoted joined",
        "file1",
        ".hidden",  # COPY conf/ etc/: the directory's contents, dot files too
        "app.ini",
        "LEGACY=this is the value",
    ]


def test_generated_def_builds_and_runs_like_docker(testbed: Testbed, user_dir: Path) -> None:
    tb = testbed
    _prepare(tb, user_dir)
    res = tb.hpcbridge("recipe", "Dockerfile", "-o", "image.def", cwd=user_dir, check=True)
    assert "ADD data.tar.gz: copied in %files and unpacked" in res.stderr
    _build(tb, user_dir, "image.def", "app.sif")

    # No arguments: ENTRYPOINT + CMD; with arguments: ENTRYPOINT + exactly those arguments.
    assert _run(tb, user_dir, "app.sif") == _expected(["default arg", "two"])
    assert _run(tb, user_dir, "app.sif", *ARGS) == _expected(ARGS)

    labels = tb.run_as_user(
        [str(tb.apptainer), "inspect", "--labels", "app.sif"], cwd=user_dir
    ).stdout
    assert "version: 1.0" in labels
    assert 'maintainer: Jo "J" Doe' in labels
    assert "org.hpcbridge.recipe: golden app" in labels

    env = tb.run_as_user(
        [str(tb.apptainer), "exec", "app.sif", "sh", "-c", 'echo "$APP_HOME|$PATH|$GREETING"'],
        cwd=user_dir,
    ).stdout.strip()
    app_home, path, greeting = env.split("|")
    assert app_home == "/opt/app"
    assert path.startswith("/opt/app/bin:")
    assert greeting == "hello world"  # the base image's ENV; the ARG stayed in %post


def test_dockerfile_written_back_keeps_behaviour(testbed: Testbed, user_dir: Path) -> None:
    tb = testbed
    _prepare(tb, user_dir)
    tb.hpcbridge("recipe", "Dockerfile", "-o", "image.def", cwd=user_dir, check=True)
    tb.hpcbridge(
        "recipe", "image.def", "--to", "docker", "-o", "Dockerfile.back", cwd=user_dir, check=True
    )
    back = (user_dir / "Dockerfile.back").read_text()
    assert 'ENTRYPOINT ["/opt/app/bin/greet.sh", "it\'s", "a $HOME \\"quoted\\" arg"]' in back
    assert 'CMD ["default arg", "two"]' in back
    tb.hpcbridge("recipe", "Dockerfile.back", "-o", "again.def", cwd=user_dir, check=True)
    _build(tb, user_dir, "again.def", "again.sif")
    assert _run(tb, user_dir, "again.sif", *ARGS) == _expected(ARGS)
    assert _run(tb, user_dir, "again.sif") == _expected(["default arg", "two"])


def test_shell_runscript_def_round_trip_runs(testbed: Testbed, user_dir: Path) -> None:
    """A def whose %runscript is shell code goes to a Dockerfile and back, and still runs."""
    tb = testbed
    text = (GOLDEN / "def-script" / "image.def").read_text()
    text = re.sub(r"^From: .*$", f"From: {tb.image('busybox').ref}", text, count=1, flags=re.M)
    (user_dir / "image.def").write_text(text)
    shutil.chown(user_dir / "image.def", tb.user.uid, tb.user.gid)
    tb.hpcbridge("recipe", "image.def", "-o", "Dockerfile", cwd=user_dir, check=True)
    tb.hpcbridge("recipe", "Dockerfile", "-o", "back.def", cwd=user_dir, check=True)
    _build(tb, user_dir, "back.def", "back.sif")
    assert _run(tb, user_dir, "back.sif", "x y", "") == [
        "runscript got 2 args",
        "<x y>",
        "<>",
        "built",
    ]


HEREDOC_DOCKERFILE = """\
# syntax=docker/dockerfile:1
FROM {ref}
RUN <<EOT
set -e
mkdir -p /etc/app
cat > /etc/app/motd <<'MOTD'
  indented line kept
MOTD
EOT
COPY --chmod=0755 <<'EOF' /usr/local/bin/hello
#!/bin/sh
printf 'hello <%s>\\n' "$@"
cat /etc/app/motd
EOF
SHELL ["/bin/sh", "-e", "-c"]
RUN test -x /usr/local/bin/hello; \\
    echo "shell form ran with -e" > /etc/app/shell
ENTRYPOINT ["/usr/local/bin/hello"]
CMD ["world"]
"""


def test_heredocs_and_shell_build_and_run(testbed: Testbed, user_dir: Path) -> None:
    """BuildKit here-documents (RUN and COPY) and SHELL, translated and built for real."""
    tb = testbed
    (user_dir / "Dockerfile").write_text(HEREDOC_DOCKERFILE.format(ref=tb.image("busybox").ref))
    shutil.chown(user_dir / "Dockerfile", tb.user.uid, tb.user.gid)
    tb.hpcbridge("recipe", "Dockerfile", "-o", "image.def", cwd=user_dir, check=True)
    _build(tb, user_dir, "image.def", "heredoc.sif")
    assert _run(tb, user_dir, "heredoc.sif") == ["hello <world>", "  indented line kept"]
    assert _run(tb, user_dir, "heredoc.sif", "a b", "") == [
        "hello <a b>",
        "hello <>",
        "  indented line kept",
    ]
    shell = tb.run_as_user(
        [str(tb.apptainer), "exec", "heredoc.sif", "cat", "/etc/app/shell"], cwd=user_dir
    )
    assert shell.stdout == "shell form ran with -e\n"


def test_python_workdir_golden_builds_and_runs(testbed: Testbed, user_dir: Path) -> None:
    """The most common Python Dockerfile (WORKDIR /app, COPY requirements.txt ., ...): its
    golden definition file builds with the real Apptainer from the testbed registry's
    Python image and runs (with --pwd /app, as the WORKDIR note says) finding its files."""
    tb = testbed
    case = GOLDEN / "python-workdir"
    for name in ("Dockerfile", "requirements.txt", "main.py"):
        shutil.copy2(case / name, user_dir / name)
    shutil.copytree(case / "lib", user_dir / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    ref = tb.image("debian-python").ref
    text = (user_dir / "Dockerfile").read_text()
    text = re.sub(r"^FROM .*$", f"FROM {ref}", text, count=1, flags=re.M)
    (user_dir / "Dockerfile").write_text(text)
    for p in (user_dir, *user_dir.rglob("*")):
        shutil.chown(p, tb.user.uid, tb.user.gid)
    res = tb.hpcbridge("recipe", "Dockerfile", "-o", "image.def", cwd=user_dir, check=True)
    assert "COPY into /app: written as /app/ so %files creates the directory" in res.stderr
    expected = (case / "expected.def").read_text()
    assert (user_dir / "image.def").read_text() == re.sub(
        r"^From: .*$", f"From: {ref}", expected, count=1, flags=re.M
    )
    assert "    requirements.txt /app/\n" in expected
    _build(tb, user_dir, "image.def", "py.sif")
    run = tb.run_as_user([str(tb.apptainer), "run", "--pwd", "/app", "py.sif"], cwd=user_dir)
    assert run.stdout.splitlines() == [
        "hello from /app/lib",
        "installed ['numpy==1.26.4', 'pandas==2.2.2']",
        "cwd /app",
        "USER appuser",  # ENV USER replaces the caller's: what the note warns about
    ]
