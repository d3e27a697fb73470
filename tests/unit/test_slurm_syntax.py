"""Slurm's value syntax: time limits, memory sizes, array specs and index lists."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcbridge.errors import ConfigError, JobSpecError
from hpcbridge.slurm_syntax import (
    MEM_UNITS,
    SIGNAL_NUMBERS,
    ArraySpec,
    format_indices,
    format_mem,
    format_time,
    parse_array,
    parse_indices,
    parse_mem,
    parse_time,
    parse_time_limit,
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
        # no field has an upper bound (sbatch 22.05 on the testbed took every one of these)
        ("0-47:00:00", 47 * 3600),
        ("0-47", 47 * 3600),
        ("47:00:00", 47 * 3600),
        ("1-30:00:00", 54 * 3600),
        ("1:90:00", 150 * 60),
        ("90:30", 90 * 60 + 30),
        ("0:75", 75),
        ("2-3:75", 2 * 86400 + 3 * 3600 + 75 * 60),
    ],
)
def test_parse_time_accepts_every_slurm_form(text: str, seconds: int) -> None:
    assert parse_time(text) == seconds


def test_parse_time_integer_minutes_and_toml_time() -> None:
    assert parse_time(45) == 45 * 60
    assert parse_time(datetime.time(1, 30)) == 5400


@pytest.mark.parametrize(
    "bad", ["", "abc", "1:2:3:4", "1-2:3:4:5", "1--2", "-5", "0", "0:00:00", "1.5h", "1-"]
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
def test_format_indices_round_trips(indices: set[int]) -> None:
    text = format_indices(indices)
    assert parse_array(text).indices == tuple(sorted(indices))
    assert ArraySpec(tuple(sorted(indices))).spec == text


@pytest.mark.parametrize("word", ["UNLIMITED", "infinite", " Unlimited "])
def test_time_limit_reads_unlimited(word: str) -> None:
    assert parse_time_limit(word) is None
    assert parse_time_limit("1-00:00:00") == 86400
    with pytest.raises(JobSpecError):
        parse_time(word)


def test_memory_units_are_powers_of_1024() -> None:
    assert [MEM_UNITS[u] * 1024 for u in "KMGT"] == [1, 1024, 1024**2, 1024**3]
    for unit in "MGT":
        assert format_mem(parse_mem(f"3{unit}")) == f"3{unit}"


def test_indices_as_the_scheduler_prints_them() -> None:
    assert parse_indices("1,3,5-7") == (1, 3, 5, 6, 7)
    assert parse_indices("[0-6:2]%3") == (0, 2, 4, 6)
    assert parse_indices("[1, 3]") == (1, 3)
    for odd in ("x", "", "[]", "5-1", "1-3:0", "1,,2"):
        assert parse_indices(odd) is None
    assert format_indices([7, 1, 2, 3, 5]) == "1-3,5,7"
    assert parse_indices(format_indices(range(0, 1000, 3))) == tuple(range(0, 1000, 3))


def test_signal_numbers_are_linux_numbers() -> None:
    import signal

    for name, number in SIGNAL_NUMBERS.items():
        assert getattr(signal, f"SIG{name}") == number
