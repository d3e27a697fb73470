"""Why hpcbridge does not hand the translation to spython: its defects, pinned.

Each test runs spython's own DockerParser/SingularityWriter (or SingularityParser)
on an input from the golden set and checks the defect the translation here fixes.
If one of them starts failing, spython has fixed that part: consider using it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbridge.recipe import def_to_dockerfile, dockerfile_to_def

spython_parsers = pytest.importorskip("spython.main.parse.parsers")
spython_writers = pytest.importorskip("spython.main.parse.writers")

DOCKERFILE = """FROM 127.0.0.1:5000/hpcb/busybox:1.35
LABEL title="hello tool" version=1.0
ARG GREETING="hello world"
ADD data.tar.gz /opt/data/
RUN echo "$GREETING" > /opt/app/greeting
ENTRYPOINT ["/bin/echo", "it's", "a b"]
CMD ["default arg"]
"""


def _spython_def(tmp_path: Path, text: str) -> str:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    parser = spython_parsers.DockerParser(str(path))
    return str(spython_writers.SingularityWriter(parser.recipe).convert())


def _section(text: str, name: str) -> list[str]:
    body = text.split(f"%{name}\n", 1)[1].split("\n%", 1)[0]
    return [ln.strip() for ln in body.splitlines() if ln.strip()]


def test_spython_runscript_is_unquoted_and_always_appends_cmd(tmp_path: Path) -> None:
    theirs = _section(_spython_def(tmp_path, DOCKERFILE), "runscript")
    # An unbalanced quote (a shell syntax error) and CMD even when arguments are given.
    assert theirs == ['exec /bin/echo it\'s a b default arg "$@"']
    ours = _section(dockerfile_to_def(DOCKERFILE).text, "runscript")
    assert ours[-1] == "exec /bin/echo 'it'\"'\"'s' 'a b' \"$@\""


def test_spython_add_archive_is_a_broken_tar(tmp_path: Path) -> None:
    theirs = _section(_spython_def(tmp_path, DOCKERFILE), "post")
    assert "tar -zvf data.tar.gz /opt/data/" in theirs  # no -x, no -C: tar fails
    ours = _section(dockerfile_to_def(DOCKERFILE).text, "post")
    assert "mkdir -p /opt/data && tar -xzf /.hpcbridge-add/data.tar.gz -C /opt/data" in ours


def test_spython_multi_label_line_is_one_label(tmp_path: Path) -> None:
    theirs = _section(_spython_def(tmp_path, DOCKERFILE), "labels")
    assert theirs == ['title="hello tool" version=1.0']  # key `title="hello`
    ours = _section(dockerfile_to_def(DOCKERFILE).text, "labels")
    assert ours == ["title hello tool", "version 1.0"]


def test_spython_arg_is_not_exported(tmp_path: Path) -> None:
    theirs = _section(_spython_def(tmp_path, DOCKERFILE), "post")
    assert 'GREETING="hello world"' in theirs  # a shell variable, invisible to child processes
    ours = _section(dockerfile_to_def(DOCKERFILE).text, "post")
    assert 'export GREETING="hello world"' in ours


def test_spython_crashes_on_legacy_env(tmp_path: Path) -> None:
    with pytest.raises(IndexError):
        _spython_def(tmp_path, "FROM a\nENV LEGACY this is the value\n")
    text = dockerfile_to_def("FROM a\nENV LEGACY this is the value\n").text
    assert 'export LEGACY="this is the value"' in text


def test_spython_singularity_parser_lowercases_from_and_misreads_post(tmp_path: Path) -> None:
    path = tmp_path / "Singularity"
    path.write_text("Bootstrap: docker\nFrom: Org/Img:MyTag\n%post\n    echo 'from: x'\n")
    recipe = spython_parsers.SingularityParser(str(path)).recipe
    assert recipe["spython-base"].fromHeader != "Org/Img:MyTag"
    text = def_to_dockerfile(path.read_text()).text
    assert "FROM Org/Img:MyTag" in text
    assert "echo 'from: x'" in text
