"""The state store on the local file system (the shared poll cache: test_track_poll.py)."""

from __future__ import annotations

import json
import multiprocessing
import re
import stat
from pathlib import Path

import pytest

from hpcbridge.errors import StateError
from hpcbridge.tracking.record import Record
from hpcbridge.tracking.store import Store, new_id


def test_ids_are_sortable_and_unique() -> None:
    a, b = new_id(1_700_000_000), new_id(1_700_000_001)
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", a)
    assert a < b
    assert len({new_id(0) for _ in range(200)}) == 200


def test_store_layout_modes_and_resolve(tmp_path: Path) -> None:
    store = Store(tmp_path / "state")
    d = store.new_submission(Record())
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert (d / "outcomes").is_dir() and (d / "logs").is_dir()
    rec = store.load(d.name)
    assert json.loads((d / "record.json").read_text())["schema"] == 2
    assert rec.state == "pending" and rec.id == d.name
    assert store.resolve(d.name[:10]) == d.name
    assert store.resolve(d.name.rsplit("-", 1)[1]) == d.name
    assert store.resolve("last") == d.name
    with pytest.raises(StateError):
        store.resolve("nope")
    store.update(d.name, lambda r: setattr(r, "state", "submitted"))
    assert store.load(d.name).state == "submitted"
    with pytest.raises(StateError):
        store.write_file(d.name, "../escape", "x")


def test_corrupt_record_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = Store(tmp_path)
    good = store.new_submission(Record()).name
    bad = store.new_submission(Record()).name
    newer = store.new_submission(Record()).name
    (store.path(bad) / "record.json").write_text("{not json")
    (store.path(newer) / "record.json").write_text(json.dumps({"id": newer, "schema": 99}))
    assert [r.id for r in store.records()] == [good]
    with pytest.raises(StateError, match="schema 99"):
        store.load(newer)


def test_unknown_keys_survive_a_rewrite(tmp_path: Path) -> None:
    store = Store(tmp_path)
    sub = store.new_submission(Record(name="x")).name
    path = store.path(sub) / "record.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "schema": 1, "later": {"a": 1}}))
    store.update(sub, lambda r: setattr(r, "state", "submitted"))
    again = json.loads(path.read_text())
    assert again["later"] == {"a": 1} and again["schema"] == 2 and again["state"] == "submitted"


def _writer(root: str, n: int) -> None:
    store = Store(Path(root))
    for i in range(n):
        sub = store.new_submission(Record(name=f"n{i}")).name
        for j in range(5):

            def add(r: Record, j: int = j) -> None:
                r.children.append(str(j))

            store.update(sub, add)


def test_concurrent_writers_never_corrupt(tmp_path: Path) -> None:
    procs = [multiprocessing.Process(target=_writer, args=(str(tmp_path), 10)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store(tmp_path)
    records = list(store.records())
    assert len(records) == 40 and all(r.children == ["0", "1", "2", "3", "4"] for r in records)
    leftovers = [p for p in (tmp_path / "submissions").rglob(".*.tmp")]
    assert leftovers == []
