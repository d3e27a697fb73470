"""The end file's optional usage fields (``mem_peak=``, ``cpu_usec=``), written by the job
script from its own cgroup, and their reading: older files without them still read."""

from __future__ import annotations

from hpcbridge.tracking.outcomes import combine, parse_end, parse_usage


def test_end_file_with_usage_fields() -> None:
    o = combine(4, "100 51 50 n1", "160 0 exit mem_peak=104857600 cpu_usec=2500000")
    assert o is not None
    assert (o.exit_code, o.how, o.elapsed) == (0, "exit", 60.0)
    assert o.mem_peak == 104857600
    assert o.cpu_time == 2.5


def test_end_file_without_usage_fields_reads_as_before() -> None:
    o = combine(4, "100 51 50 n1", "160 137 signal:TERM")
    assert o is not None
    assert (o.exit_code, o.signal_name, o.mem_peak, o.cpu_time) == (137, "TERM", None, None)
    assert parse_end("160 0 exit mem_peak=1") == (160.0, 0, "exit")  # old readers: unchanged


def test_malformed_usage_fields_are_unknown_not_guessed() -> None:
    assert parse_usage("160 0 exit mem_peak=12k cpu_usec=-3") == (None, None)
    assert parse_usage("160 0 exit mem_peak= junk") == (None, None)
    assert parse_usage("160 0 exit cpu_usec=7") == (None, 7e-06)


def test_usage_fields_come_before_a_reason_whose_text_is_not_read_as_fields() -> None:
    end = "160 3 exit mem_peak=100 cpu_usec=2000000 reason=input x.csv: mem_peak=5 cpu_usec=1"
    assert parse_usage(end) == (100, 2.0)
