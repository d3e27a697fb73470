"""Pure value parsers of job files: signals, placeholders, hints."""

from __future__ import annotations

import pytest

from hpcbridge.errors import JobSpecError
from hpcbridge.job.values import Field, expand, parse_signal, parse_template


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("USR1@60", "USR1@60"), ("SIGUSR1@60", "USR1@60"), ("B:TERM@30", "B:TERM@30"),
     ("usr2", "USR2"), ("10@120", "10@120")],
)  # fmt: skip
def test_parse_signal(text: str, canonical: str) -> None:
    assert parse_signal(text) == canonical


@pytest.mark.parametrize("bad", ["USR3@60", "USR1@", "X:USR1", "99", "USR1@999999", 5])
def test_parse_signal_refuses(bad: object) -> None:
    with pytest.raises(JobSpecError):
        parse_signal(bad)


def test_templates_and_expansion() -> None:
    parts = parse_template("out/{task:04d}/{input_stem}.txt", "x")
    assert parts == ("out/", Field("task", "04d"), "/", Field("input_stem", ""), ".txt")
    assert expand("out/{task:04d}/{input_stem}.txt", 7, "/d/a.b.csv") == "out/0007/a.b.txt"
    assert expand("{input_name}", 0, "/d/data.csv") == "data.csv"
    assert expand("{{literal}} {task}", 3) == "{literal} 3"
    assert expand("{input_stem}", 0, "/d/.hidden") == ".hidden"


@pytest.mark.parametrize(
    ("text", "allowed", "needle"),
    [
        ("{taks}", ("task",), "unknown placeholder {taks}"),
        ("{input}", ("task",), "not available here"),
        ("{task!r}", ("task",), "conversion"),
        ("{task:q}", ("task",), "invalid format"),
        ("{task", ("task",), "{{ and }}"),
        ("${HOME}", ("task",), "unknown placeholder {HOME}"),
        ("{0}", ("task",), "unknown placeholder {0}"),
    ],
)
def test_template_errors_name_the_placeholder(
    text: str, allowed: tuple[str, ...], needle: str
) -> None:
    with pytest.raises(JobSpecError) as info:
        parse_template(text, "command[1]", allowed)
    assert "command[1]" in info.value.message
    assert needle in str(info.value)


def test_unknown_placeholder_suggests_closest() -> None:
    with pytest.raises(JobSpecError) as info:
        parse_template("{tsak}", "env.X", ("task",))
    assert "did you mean 'task'" in (info.value.hint or "")
