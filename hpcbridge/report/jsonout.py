"""``hpcbridge report --json``: the report as JSON, described by ``schema.json`` (JSON Schema).

Sizes are bytes (``*_bytes``), durations seconds (``*_s``), instants epoch
seconds; a figure nobody measured is ``null``.  ``schema`` names the version of
this form; a change that removes or renames a key gets a new version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hpcbridge.report.build import Report

SCHEMA_ID = "hpcbridge-report/1"
SCHEMA_FILE = Path(__file__).with_name("schema.json")


def report_to_dict(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA_ID,
        "id": report.id,
        "name": report.name,
        "submissions": list(report.submissions),
        "generated_at": report.generated_at,
        "accounting": report.accounting,
        "tasks": report.tasks,
        "states": report.states(),
        "summary": report.summary.to_dict(),
        "suggestions": {"memory": report.memory.to_dict(), "time": report.time.to_dict()},
        "attempts": [a.to_dict() for a in report.attempts],
        "notes": list(report.notes),
    }


def load_schema() -> dict[str, Any]:
    """The JSON Schema of :func:`report_to_dict`'s output."""
    data: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return data
