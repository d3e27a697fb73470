"""Typed records read what the previous version wrote (schema 1, tests/fixtures/records/v1).

The fixtures are real ``record.json`` files written by hpcbridge 0f5ce17 on the
testbed (see generate_v1.py next to them): a plain job, an array split into
chunks, a resubmission of its failed tasks, a rerun and a cancelled array.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hpcbridge.tracking.record import SCHEMA, Record, record_from_dict, record_to_dict
from hpcbridge.tracking.store import Store

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "records" / "v1"
SCENARIOS = sorted(json.loads((V1 / "ids.json").read_text()))


def raw(scenario: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((V1 / scenario / "record.json").read_text())
    return data


# what schema 2 writes that a schema-1 record may lack (all with their neutral value)
ADDED = {"error", "cancelled_all"}
ADDED_TO_JOB = {"argv"}
ADDED_TO_CHUNK = {"reconciled", "output", "error"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_schema_1_value_reads_back_the_same(scenario: str) -> None:
    old = raw(scenario)
    assert old["schema"] == 1
    new = record_to_dict(record_from_dict(old))
    assert new["schema"] == SCHEMA == 2
    for key, value in old.items():
        if key not in ("schema", "chunks", "job"):
            assert new[key] == value, key
    assert set(new) - set(old) <= ADDED
    assert {k: new["job"][k] for k in old["job"]} == old["job"]
    assert set(new["job"]) - set(old["job"]) <= ADDED_TO_JOB and new["job"]["argv"] == []
    assert len(new["chunks"]) == len(old["chunks"])
    for old_chunk, new_chunk in zip(old["chunks"], new["chunks"]):
        assert {k: new_chunk[k] for k in old_chunk} == old_chunk
        assert set(new_chunk) - set(old_chunk) <= ADDED_TO_CHUNK


def test_typed_fields_of_schema_1_records() -> None:
    ids = json.loads((V1 / "ids.json").read_text())
    plain, chunked = record_from_dict(raw("plain")), record_from_dict(raw("chunked"))
    assert isinstance(plain, Record) and not plain.is_array and plain.task_ids() == [0]
    assert plain.children == [ids["rerun"]] and plain.image is not None
    assert plain.image.digest.startswith("sha256:") and plain.job.text.startswith('name = "plain"')
    assert [(c.offset, c.indices, c.job_id) for c in chunked.chunks] == [
        (0, "0-3", chunked.chunks[0].job_id),
        (4, "0-3", chunked.chunks[1].job_id),
        (8, "0-1", chunked.chunks[2].job_id),
    ]
    assert chunked.task_ids() == list(range(10)) and chunked.tasks == "0-9"
    assert chunked.snapshot is not None and chunked.snapshot.counts == {"COMPLETED": 8, "FAILED": 2}
    # schema 1 sent the logs where hpcbridge's own --output said
    assert all(c.output and c.output.endswith("/logs/%x_%A_%a.out") for c in chunked.chunks)
    resub = record_from_dict(raw("resubmit"))
    assert (resub.kind, resub.parent, resub.tasks) == ("resubmit", ids["chunked"], "3,7")
    rerun = record_from_dict(raw("rerun"))
    assert (rerun.kind, rerun.parent) == ("rerun", ids["plain"])
    cancelled = record_from_dict(raw("cancelled"))
    assert cancelled.cancelled_all and cancelled.cancelled_tasks() == {0, 1, 2, 3}


def test_a_schema_1_record_is_rewritten_as_schema_2(tmp_path: Path) -> None:
    store = Store(tmp_path)
    old = raw("chunked")
    store.create(record_from_dict(old))
    store.update(old["id"], lambda r: setattr(r, "deferred", False))
    again = json.loads((store.path(old["id"]) / "record.json").read_text())
    assert again["schema"] == 2 and again["chunks"][2]["offset"] == 8
    assert record_to_dict(store.load(old["id"])) == again
