"""Pure value parsers of job files: time, memory, arrays, signals, placeholders."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcbridge.errors import ConfigError, JobSpecError
from hpcbridge.job.values import (
    ArraySpec,
    Field,
    compress_indices,
    expand,
    format_mem,
    format_time,
    parse_array,
    parse_mem,
    parse_signal,
    parse_template,
    parse_time,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30 * 60),  # minutes
        ("90", 90 * 60),
        ("5:30", 5 * 60 + 30),  # minutes:seconds
        ("01:00:00", 3600),
        ("1:30:05", 5405),
        ("2-0", 2 * 86400),  # days-hours
        ("1-12", 86400 + 12 * 3600),
        ("1-12:30", 86400 + 12 * 3600 + 30 * 60),
        ("3-00:00:00", 3 * 86400),
        (" 10:00 ", 600),
    ],
)
def test_parse_time_accepts_every_slurm_form(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds


def test_parse_time_integer_minutes_and_toml_time() -> None:
    assert parse_time(45) == 45 * 60
    assert parse_time(datetime.time(1, 30)) == 5400


@pytest.mark.parametrize(
    "bad", ["", "abc", "1:2:3:4", "1-25:00:00", "1:61:00", "10:99", "-5", "0", "0:00:00", "1.5h"]
)
def test_parse_time_refuses_nonsense_naming_value_and_forms(bad: str) -> None:
    with pytest.raises(JobSpecError) as info:
        parse_time(bad, "resources.time")
    assert "resources.time" in str(info.value)
    assert repr(bad.strip()) in str(info.value) or repr(bad) in str(info.value)
    assert info.value.hint


def test_parse_time_error_class_is_selectable() -> None:
    with pytest.raises(ConfigError):
        parse_time("x", "partitions.a.max_time", ConfigError)


def test_parse_time_refuses_bool() -> None:
    with pytest.raises(JobSpecError):
        parse_time(True)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(60, "00:01:00"), (3600, "01:00:00"), (86400, "1-00:00:00"), (90061, "1-01:01:01")],
)
def test_format_time_canonical(seconds: int, text: str) -> None:
    assert format_time(seconds) == text


@given(st.integers(min_value=1, max_value=365 * 86400))
def test_time_round_trips(seconds: int) -> None:
    assert parse_time(format_time(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "mib"),
    [("500M", 500), ("4G", 4096), ("4g", 4096), ("1T", 1024 * 1024), ("2048", 2048),
     ("1.5G", 1536), ("512K", 1), ("4GB", 4096), ("4GiB", 4096), (1000, 1000)],
)  # fmt: skip
def test_parse_mem(text: object, mib: int) -> None:
    assert parse_mem(text) == mib


@pytest.mark.parametrize("bad", ["", "4 X", "G", "-1G", "0", "lots", True, 2.5])
def test_parse_mem_refuses(bad: object) -> None:
    with pytest.raises(JobSpecError) as info:
        parse_mem(bad, "resources.mem")
    assert "resources.mem" in info.value.message
    assert "500M" in (info.value.hint or "")


def test_format_mem() -> None:
    assert format_mem(4096) == "4G"
    assert format_mem(500) == "500M"
    assert format_mem(1024 * 1024 * 2) == "2T"


@pytest.mark.parametrize(
    ("text", "indices", "throttle", "canonical"),
    [
        ("0-99:2%10", tuple(range(0, 100, 2)), 10, None),
        ("1,3,5-7", (1, 3, 5, 6, 7), None, "1,3,5-7"),
        ("7", (7,), None, "7"),
        ("0-3", (0, 1, 2, 3), None, "0-3"),
        ("3,1,2", (1, 2, 3), None, "1-3"),
        ("0-9%2", tuple(range(10)), 2, "0-9%2"),
    ],
)
def test_parse_array(
    text: str, indices: tuple[int, ...], throttle: int | None, canonical: str | None
) -> None:
    spec = parse_array(text)
    assert spec.indices == indices
    assert spec.throttle == throttle
    if canonical:
        assert spec.spec == canonical
    assert parse_array(spec.spec) == spec  # canonical form re-parses to the same spec


def test_parse_array_from_toml_list_and_int() -> None:
    assert parse_array([5, 1, 3]).indices == (1, 3, 5)
    assert parse_array(4).indices == (4,)


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("5-1", "ends before it starts"),
        ("0-9:0", "step"),
        ("0-9%0", "throttle"),
        ("0-9%x", "throttle"),
        ("a-b", "not an index"),
        ("-1", "not an index"),
        ("1,,2", "not an index"),
        ("", "no indices"),
        ("0-99999999", "above"),
        ([], "not a list"),
        (True, "not an array spec"),
    ],
)
def test_parse_array_refuses(bad: object, needle: str) -> None:
    with pytest.raises(JobSpecError) as info:
        parse_array(bad)
    assert needle in info.value.message


@given(st.sets(st.integers(min_value=0, max_value=5000), min_size=1, max_size=200))
def test_compress_indices_round_trips(indices: set[int]) -> None:
    text = compress_indices(indices)
    assert parse_array(text).indices == tuple(sorted(indices))
    assert ArraySpec(tuple(sorted(indices))).spec == text


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
