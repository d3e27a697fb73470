"""Bad-input corpus of a first contact (issue 13): one line, the right exit code, nothing written.

Each case runs the real ``hpcbridge`` executable in a fresh directory whose HOME
has never been used: stderr is exactly one ``hpcbridge: error:`` line naming the
value (and the fix), no traceback, nothing on stdout, the exit status is the
one of the error's kind, and no file or directory appeared anywhere under the
test directory (no empty cache or state directory, no ``.part`` leftover, no
``-o`` file, no wrapper).
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from hpcbridge import runner

HPCBRIDGE = str(Path(sys.executable).with_name("hpcbridge"))
JOB = 'name = "j"\nimage = "img.sif"\ncommand = ["true"]\n'
BOM = b"\xef\xbb\xbf"


def _sif(path: Path) -> None:
    path.write_bytes(
        b"#!/usr/bin/env run-singularity\n".ljust(32, b"\n") + b"SIF_MAGIC" + bytes(64)
    )


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _two_images() -> bytes:
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": []}}).encode()
    entries = [
        {"Config": "c.json", "RepoTags": ["one:1"], "Layers": []},
        {"Config": "c.json", "RepoTags": ["two:2"], "Layers": []},
    ]
    return _tar({"c.json": config, "manifest.json": json.dumps(entries).encode()})


def _setup(tmp: Path) -> None:
    _sif(tmp / "img.sif")
    (tmp / "job.toml").write_text(JOB)
    (tmp / "bom.toml").write_bytes(BOM + JOB.encode())
    (tmp / "site-bom.toml").write_bytes(BOM + b"[runtime]\nflavor = 'apptainer'\n")
    (tmp / "port.toml").write_text(JOB.replace("img.sif", "docker://127.0.0.1:99999/hpcb/x:1"))
    (tmp / "Dockerfile").write_text("FROM busybox:1.36\nRUN true\n")
    (tmp / "Dockerfile.arg").write_text("ARG BASE\nFROM $BASE\nRUN true\n")
    (tmp / "nomanifest.tar.gz").write_bytes(gzip.compress(_tar({"hello.txt": b"hi\n"})))
    (tmp / "two.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(_two_images()))
    (tmp / "two.tar").write_bytes(_two_images())
    (tmp / "layout").mkdir()


# (id, argv, extra env, exit status, texts the one line must contain)
CASES: list[tuple[str, list[str], dict[str, str], int, tuple[str, ...]]] = [
    ("bom-job-file", ["render", "bom.toml"], {}, 3, ("bom.toml", "byte-order mark", "remove it")),
    (
        "bom-site-file",
        ["render", "job.toml"],
        {"HPCBRIDGE_SITE_CONFIG": "site-bom.toml"},
        3,
        ("site-bom.toml", "byte-order mark"),
    ),
    (
        "port-99999-convert",
        ["convert", "docker://127.0.0.1:99999/hpcb/x:1"],
        {},
        3,
        ("port 99999", "out of range (1-65535)"),
    ),
    ("port-99999-job", ["render", "port.toml"], {}, 3, ("port 99999", "1-65535")),
    ("port-0", ["convert", "docker://localhost:0/x:1"], {}, 3, ("port 0",)),
    ("submit-bad-job", ["submit", "job.toml", "--set", "bogus=1"], {}, 3, ("'bogus'",)),
    ("status-unknown-id", ["status", "20260101-000000-abcdef"], {}, 6, ("20260101-000000-abcdef",)),
    ("logs-unknown-id", ["logs", "nope"], {}, 6, ("'nope'", "hpcbridge list")),
    ("cancel-unknown-id", ["cancel", "nope"], {}, 6, ("'nope'",)),
    ("watch-unknown-id", ["watch", "nope"], {}, 6, ("'nope'",)),
    ("resubmit-unknown-id", ["resubmit", "nope", "--failed"], {}, 6, ("'nope'",)),
    ("rerun-unknown-id", ["rerun", "last"], {}, 6, ("'last'",)),
    (
        "gzip-archive-without-manifest",
        ["convert", "docker-archive:nomanifest.tar.gz"],
        {},
        4,
        ("nomanifest.tar.gz is not a docker-archive (no manifest.json)",),
    ),
    (
        "zstd-archive-with-two-images",
        ["convert", "docker-archive:two.tar.zst"],
        {},
        4,
        ("two.tar.zst holds 2 images", "one:1", ":@N"),
    ),
    (
        "archive-unknown-tag",
        ["convert", "docker-archive:two.tar.zst:three:3"],
        {},
        4,
        ("two.tar.zst has no image tagged docker.io/library/three:3", "one:1, two:2"),
    ),
    ("archive-index-out-of-range", ["convert", "docker-archive:two.tar:@5"], {}, 4, ("no @5",)),
    ("archive-bad-index", ["convert", "docker-archive:two.tar:@x"], {}, 3, ("'@x'",)),
    ("oci-empty-tag", ["convert", "oci:layout:"], {}, 3, ("nothing after the ':'",)),
    (
        "recipe-output-dir-missing",
        ["recipe", "Dockerfile", "-o", "nodir/x.def"],
        {},
        3,
        ("nodir/x.def", "existing, writable directory"),
    ),
    (
        "recipe-output-is-input",
        ["recipe", "Dockerfile", "-o", "./Dockerfile"],
        {},
        3,
        ("-o Dockerfile is the input file Dockerfile",),
    ),
    (
        "recipe-arg-without-default",
        ["recipe", "Dockerfile.arg", "-o", "x.def"],
        {},
        3,
        ("Dockerfile.arg:2", "ARG BASE without a default"),
    ),
    (
        "wrap-bind-denied",
        ["wrap", "img.sif", "true", "--dir", "bin", "--bind", "/etc:/x"],
        {},
        3,
        ("--bind '/etc:/x'", "deny-list", "'/etc'"),
    ),
    (
        "wrap-bind-missing",
        ["wrap", "img.sif", "true", "--dir", "bin", "--bind", "/nonexistent/d:/d"],
        {},
        3,
        ("/nonexistent/d", "does not exist"),
    ),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run(tmp: Path, argv: list[str], env: dict[str, str]) -> runner.Completed:
    full_env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp / "home"), "LANG": "C.UTF-8", **env}
    return runner.run([HPCBRIDGE, *argv], env=full_env, cwd=tmp, check=False, timeout=60)


def test_corpus_ids_are_unique() -> None:
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("argv", "env", "status", "needles"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refused_in_one_line_writing_nothing(
    tmp_path: Path, argv: list[str], env: dict[str, str], status: int, needles: tuple[str, ...]
) -> None:
    _setup(tmp_path)
    (tmp_path / "home").mkdir()
    before = _tree(tmp_path)
    done = run(tmp_path, argv, env)
    lines = done.stderr.splitlines()
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("hpcbridge: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert done.returncode == status, done.stderr
    assert done.stdout == ""
    assert _tree(tmp_path) == before  # nothing written: no cache, state, .part, -o or bin/


def test_the_refused_archive_is_kept_and_a_retry_leaves_nothing(tmp_path: Path) -> None:
    _setup(tmp_path)
    before = _tree(tmp_path)
    for _ in range(2):
        done = run(tmp_path, ["convert", "docker-archive:nomanifest.tar.gz"], {})
        assert done.returncode == 4
    assert _tree(tmp_path) == before
