"""The report's three forms: terminal text (80 columns), JSON (valid against the documented
JSON Schema) and the self-contained HTML page (inline PNG figures, nothing fetched)."""

from __future__ import annotations

import re
import sys

import jsonschema
import pytest

from hpcbridge.errors import EnvironmentProblem
from hpcbridge.report.html import render_html, report_html
from hpcbridge.report.jsonout import SCHEMA_FILE, load_schema, report_to_dict
from hpcbridge.report.text import WIDTH, histogram_lines, report_lines, short_time
from tests.unit.test_report_support import attempt, report_of, story


def test_text_fits_80_columns_and_names_every_part() -> None:
    lines = report_lines(report_of(story()))
    assert max(len(line) for line in lines) <= WIDTH
    text = "\n".join(lines)
    for part in (
        "memory used", "memory asked", "CPU efficiency", "core-hours:", "failures by reason:",
        "OUT_OF_MEMORY", "suggestions", "memory: 256M -> 144M", "task 7 needs 384M",
        "runtime histogram (201 finished attempts", "tasks (not completed",
    ):  # fmt: skip
        assert part in text, part
    every = report_lines(report_of(story()), show_all=True)
    assert sum(1 for line in every if re.match(r"\s+\d+\s+\d\s+[A-Z_]+\s", line)) == 201


def test_unknown_figures_are_shown_as_unknown() -> None:
    r = report_of([attempt(0, peak_mem=None, cpu_time=None, peak_source=None)])
    text = "\n".join(report_lines(r))
    assert "unknown, not estimated: 1 without peak mem, 1 without cpu time" in text
    assert "memory: no suggestion: no completed task has a measured peak" in text


def test_histogram_rows_are_round_and_fit() -> None:
    lines = histogram_lines([5.0, 7.0, 59.0, 61.0, 3600.0])
    assert len(lines) <= 13 and max(len(x) for x in lines) <= WIDTH
    assert sum(int(x.split()[-1]) for x in lines[1:]) == 5
    assert histogram_lines([]) == [
        "runtime histogram: no finished attempt has a known elapsed time"
    ]
    assert len(histogram_lines([42.0] * 10)) == 2
    assert [short_time(x) for x in (None, 5, 65, 7260, 90000)] == [
        "-",
        "5s",
        "1m05s",
        "2h01m",
        "1d01h",
    ]


def test_json_validates_against_the_documented_schema() -> None:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = report_to_dict(report_of(story()))
    jsonschema.validate(data, schema)
    assert data["states"] == {"COMPLETED": 196, "FAILED": 4}
    assert data["suggestions"]["memory"]["value"] == 144
    assert data["attempts"][0]["peak_mem_bytes"] is not None
    data["attempts"][0]["peak_mem_bytes"] = "a lot"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
    assert SCHEMA_FILE.name == "schema.json"


def test_json_of_a_report_without_figures_validates_too() -> None:
    r = report_of([attempt(0, "PENDING", start=None, end=None, elapsed=None, peak_mem=None)])
    jsonschema.validate(report_to_dict(r), load_schema())


def test_html_is_self_contained_with_every_figure() -> None:
    page = report_html(report_of(story()))
    assert page.startswith("<!DOCTYPE html>")
    assert len(re.findall(r'<img class="plot" alt="[^"]+" src="data:image/png;base64,', page)) == 4
    for fig in ("runtime", "memory", "timeline", "failures"):
        assert f'id="fig-{fig}"' in page
    # nothing to fetch: no script, no remote URL, no external stylesheet
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "task 7" not in page or "384M" in page


def test_html_escapes_what_it_shows() -> None:
    r = report_of([attempt(0, "FAILED", reason="<b>exit code 1</b>", exit_code=1)])
    page = render_html(r, [])
    assert "<b>exit code 1</b>" not in page and "&lt;b&gt;exit code 1&lt;/b&gt;" in page


def test_html_without_matplotlib_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(EnvironmentProblem) as err:
        report_html(report_of(story(20)))
    assert "needs matplotlib" in str(err.value) and "hpcbridge[report]" in str(err.value)
