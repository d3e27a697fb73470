"""Resumable blob downloads (images/fetch/download.py) against the tiny registry on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from hpcbridge.images.fetch.download import COMMIT_EVERY, DigestMismatch, partial_paths
from hpcbridge.images.fetch.manifest import Descriptor
from hpcbridge.images.fetch.registry import blob_bytes_missing
from tests.unit.images_support import Behaviour, Registry, make_image, sha
from tests.unit.test_images_registry import client

BIG = os.urandom(3 * (1 << 20) + 12345)
IMG = make_image([{"data.bin": BIG}])


def _blob() -> bytes:
    blob, _ = IMG.layers[0]
    return blob


def _ranges(reg: Registry) -> list[str]:
    return [h.get("Range", "") for m, p, h in reg.log if "/blobs/" in p]


def test_a_cut_connection_resumes_with_a_range_request(tmp_path: Path) -> None:
    blob = _blob()
    with Registry(Behaviour(cut_blobs=[100_000, 50_000])) as reg:
        reg.push("big", "v1", IMG)
        dest = tmp_path / sha(blob)[7:]
        seen: list[int] = []
        client(reg).download_blob("big", sha(blob), dest, size=len(blob), on_bytes=seen.append)
        assert dest.read_bytes() == blob
        assert _ranges(reg) == ["", "bytes=100000-", "bytes=150000-"]
        assert sum(seen) == len(blob)  # every byte once: nothing was downloaded twice
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_a_partial_file_left_by_a_killed_process_is_resumed(tmp_path: Path) -> None:
    blob = _blob()
    done = len(blob) // 2
    part, meta = partial_paths(tmp_path, sha(blob))
    part.write_bytes(blob[:done] + b"garbage that never reached the disk")
    meta.write_text(json.dumps({"digest": sha(blob), "size": len(blob), "committed": done}))
    with Registry() as reg:
        reg.push("big", "v1", IMG)
        dest = tmp_path / sha(blob)[7:]
        seen: list[int] = []
        client(reg).download_blob("big", sha(blob), dest, size=len(blob), on_bytes=seen.append)
        assert dest.read_bytes() == blob
        assert _ranges(reg) == [f"bytes={done}-"]
        assert seen[0] == done and sum(seen) == len(blob)
    assert not part.exists() and not meta.exists()


def test_a_partial_file_with_wrong_bytes_is_downloaded_again(tmp_path: Path) -> None:
    blob = _blob()
    part, meta = partial_paths(tmp_path, sha(blob))
    part.write_bytes(b"\0" * 1000)
    meta.write_text(json.dumps({"digest": sha(blob), "size": len(blob), "committed": 1000}))
    with Registry() as reg:
        reg.push("big", "v1", IMG)
        dest = tmp_path / sha(blob)[7:]
        client(reg).download_blob("big", sha(blob), dest, size=len(blob))
        assert dest.read_bytes() == blob
        assert _ranges(reg) == ["bytes=1000-", ""]


def test_a_registry_without_ranges_sends_everything_again(tmp_path: Path) -> None:
    blob = _blob()
    with Registry(Behaviour(ranges=False, cut_blobs=[70_000])) as reg:
        reg.push("big", "v1", IMG)
        dest = tmp_path / sha(blob)[7:]
        client(reg).download_blob("big", sha(blob), dest, size=len(blob))
        assert dest.read_bytes() == blob
        assert _ranges(reg) == ["", "bytes=70000-"]  # asked, got a 200 with all of it


def test_a_corrupt_blob_keeps_nothing(tmp_path: Path) -> None:
    blob = _blob()
    with Registry(Behaviour(corrupt_blobs=True)) as reg:
        reg.push("big", "v1", IMG)
        dest = tmp_path / sha(blob)[7:]
        with pytest.raises(DigestMismatch, match="hashes to"):
            client(reg, retries=1).download_blob("big", sha(blob), dest, size=len(blob))
    assert list(tmp_path.iterdir()) == []


def test_the_committed_length_is_written_as_the_download_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpcbridge.images.fetch import download

    monkeypatch.setattr(download, "COMMIT_EVERY", 1 << 20)
    blob = _blob()
    _, meta = partial_paths(tmp_path, sha(blob))
    commits: list[int] = []
    real = download.Partial.commit

    def spy(self: download.Partial) -> None:
        real(self)
        commits.append(json.loads(meta.read_text())["committed"])

    monkeypatch.setattr(download.Partial, "commit", spy)
    with Registry() as reg:
        reg.push("big", "v1", IMG)
        client(reg).download_blob("big", sha(blob), tmp_path / sha(blob)[7:], size=len(blob))
    assert commits[:3] == sorted(commits[:3]) and commits[2] >= 3 << 20
    assert COMMIT_EVERY == 64 << 20


def test_two_downloaders_of_one_blob_download_it_once(tmp_path: Path) -> None:
    blob = _blob()
    with Registry(Behaviour(slow_blobs=0.002)) as reg:
        reg.push("big", "v1", IMG)
        dest = tmp_path / sha(blob)[7:]
        errors: list[BaseException] = []

        def one() -> None:
            try:
                client(reg).download_blob("big", sha(blob), dest, size=len(blob))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha(blob)[7:]
        assert len(_ranges(reg)) == 1  # the second waited for the first
    assert sorted(p.name for p in tmp_path.iterdir()) == [dest.name]


def test_bytes_missing_counts_partial_downloads(tmp_path: Path) -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    (tmp_path / ("a" * 64)).write_bytes(b"x" * 10)
    partial_paths(tmp_path, b)[0].write_bytes(b"y" * 30)
    layers = [Descriptor("m", a, 10), Descriptor("m", b, 100), Descriptor("m", c, 1000)]
    assert blob_bytes_missing(tmp_path, layers) == 70 + 1000
