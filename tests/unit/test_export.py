"""Bundles: the pure file set, definition files, manifest checks, export's atomic write."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hpcbridge.errors import InputError, StateError
from hpcbridge.submit.bundle import (
    MANIFEST,
    bundle_files,
    definition_file,
    export_submission,
    read_bundle,
)
from hpcbridge.tracking.record import record_from_dict
from hpcbridge.tracking.store import Store

DIGEST = "sha256:" + "12" * 32
RECORD = {
    "id": "20260101-000000-abcdef",
    "name": "fig3",
    "kind": "submit",
    "created_at": "2026-01-01T00:00:00Z",
    "user": "alice",
    "host": "login1",
    "cluster": None,
    "tasks": "0-9",
    "task_count": 10,
    "chunks": [{"job_id": "42", "script": "job-0.sh", "offset": 0, "indices": "0-9"}],
    "image": {
        "ref": "docker://ghcr.io/lab/sim:1.2",
        "digest": DIGEST,
        "sif_path": "/cache/sif/x.sif",
        "sif_sha256": "ab" * 32,
    },
    "job": {"file": "/home/alice/job.toml", "sets": ["array=0-9"], "text": 'name = "fig3"\n'},
    "config": {"values": {"convert": {"compression": "zstd", "level": 3}}, "sources": {}},
}


def test_bundle_files_and_manifest() -> None:
    files = bundle_files(
        record_from_dict(RECORD), {"job-0.sh": "#!/bin/bash\n"}, "2026-02-02T00:00:00Z"
    )
    assert sorted(files) == [
        "README.md",
        MANIFEST,
        "config.json",
        "image.def",
        "job.toml",
        "scripts/job-0.sh",
    ]
    manifest = json.loads(files[MANIFEST])
    assert manifest["image"]["pinned_ref"] == f"docker://ghcr.io/lab/sim@{DIGEST}"
    assert manifest["convert"] == {"compression": "zstd", "level": 3, "platform": "linux/amd64"}
    assert manifest["job"]["sets"] == ["array=0-9"]
    assert set(manifest["files"]) == set(files) - {MANIFEST}
    readme = files["README.md"]
    assert "hpcbridge rerun --from ." in readme
    assert "--compression zstd --level 3" in readme
    assert f"--set array=0-9 --set image=docker://ghcr.io/lab/sim@{DIGEST}" in readme


@pytest.mark.parametrize(
    ("ref", "lines"),
    [
        ("docker://ghcr.io/lab/sim:1.2", ["Bootstrap: docker", f"From: ghcr.io/lab/sim@{DIGEST}"]),
        ("docker-archive:/data/img.tar", ["Bootstrap: docker-archive", "From: /data/img.tar"]),
        ("oci:/data/layout:v1", ["Bootstrap: oci", "From: /data/layout:v1"]),
        ("/images/tool.sif", ["Bootstrap: localimage", "From: /images/tool.sif"]),
    ],
)
def test_definition_file(ref: str, lines: list[str]) -> None:
    text = definition_file(ref, DIGEST)
    assert text.splitlines()[-2:] == lines


def test_no_digest_no_bundle() -> None:
    with pytest.raises(StateError):
        bundle_files(record_from_dict({**RECORD, "image": {}}), {}, "now")


def test_sbatch_submissions_have_no_job_file_to_export() -> None:
    with pytest.raises(StateError, match="hpcbridge sbatch"):
        bundle_files(record_from_dict({**RECORD, "kind": "sbatch"}), {}, "now")


def _store_with_record(tmp_path: Path) -> Store:
    store = Store(tmp_path / "state")
    store.create(record_from_dict(RECORD))
    store.write_file(RECORD["id"], "job-0.sh", "#!/bin/bash\necho hi\n", mode=0o700)
    store.write_file(RECORD["id"], "job.toml", RECORD["job"]["text"])  # type: ignore[index]
    return store


def test_export_writes_atomically_and_checks(tmp_path: Path) -> None:
    store = _store_with_record(tmp_path)
    out = tmp_path / "bundle"
    done = export_submission(store.root, "abcdef", out)
    sub_id = done.id
    assert sub_id == RECORD["id"] and done.directory == out
    assert done.manifest["submission"]["id"] == sub_id
    assert (out / "scripts" / "job-0.sh").stat().st_mode & 0o111
    assert read_bundle(out)["submission"]["id"] == sub_id
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(InputError, match="not empty"):
        export_submission(store.root, "abcdef", out)
    (out / "scripts" / "job-0.sh").write_text("#!/bin/bash\necho changed\n")
    with pytest.raises(InputError, match=r"scripts/job-0\.sh was changed since export"):
        read_bundle(out)
    with pytest.raises(InputError, match="not an hpcbridge bundle"):
        read_bundle(tmp_path)


def test_export_cli_unknown_id_is_one_line(tmp_path: Path) -> None:
    _store_with_record(tmp_path)
    res = subprocess.run(
        [sys.executable, "-m", "hpcbridge", "export", "nope", "-o", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        env={
            "HOME": str(tmp_path),
            "HPCBRIDGE_STATE_DIR": str(tmp_path / "state"),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert res.returncode == 6
    assert res.stderr.count("\n") == 1 and "nope" in res.stderr
    assert not (tmp_path / "b").exists()
