"""``images list`` / ``images usage`` count everything the cache holds; prune reclaims it.

A real conversion (the unit registry on 127.0.0.1, real mksquashfs) keeps the
downloaded layers next to the SIF: the listing counts them, ``usage --json``
adds up to every byte under the cache directory, ``prune --blobs`` frees them
and keeps the image.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.cli.test_convert_cli import IMG, env_for, run
from tests.unit.images_support import Registry

pytestmark = pytest.mark.skipif(shutil.which("mksquashfs") is None, reason="needs mksquashfs")


def du(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if not p.is_dir())


def test_usage_counts_blobs_and_prune_blobs_frees_them(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    cache = tmp_path / "xdg-cache" / "hpcbridge"
    with Registry() as reg:
        reg.push("tiny", "v1", IMG)
        done = run(["convert", f"docker://{reg.host}/tiny:v1"], env, tmp_path)
        assert done.returncode == 0, done.stderr
    layers = sum(len(blob) for blob, _ in IMG.layers)
    usage = json.loads(run(["images", "usage", "--json"], env, tmp_path).stdout)
    assert usage["total"] == du(cache)  # every byte, counted once
    kinds = usage["kinds"]
    assert kinds["images"]["files"] == 1
    assert kinds["blobs"]["bytes"] >= layers  # the layers (and the config) kept
    listing = run(["images", "list"], env, tmp_path).stdout
    assert "the cache holds " in listing and " blobs " in listing
    assert "hpcbridge images prune --blobs" in listing

    dry = run(["images", "prune", "--blobs", "--dry-run"], env, tmp_path)
    assert "would remove" in dry.stdout and du(cache) == usage["total"]
    pruned = run(["images", "prune", "--blobs"], env, tmp_path)
    assert pruned.returncode == 0, pruned.stderr
    n = kinds["blobs"]["files"]  # the layers and the image config
    assert f"removed {n} downloaded blobs" in pruned.stdout and "freed " in pruned.stdout
    after = json.loads(run(["images", "usage", "--json"], env, tmp_path).stdout)
    assert after["kinds"]["blobs"]["files"] == 0 and after["kinds"]["images"]["files"] == 1
    assert after["total"] == du(cache) == usage["total"] - kinds["blobs"]["bytes"]
    listed = json.loads(run(["images", "list", "--json"], env, tmp_path).stdout)
    assert [i["digest"] for i in listed] == [IMG.digest]  # --json: the list, unchanged


def test_usage_of_a_missing_cache(tmp_path: Path) -> None:
    done = run(["images", "usage"], env_for(tmp_path), tmp_path)
    assert done.returncode == 0 and "is empty or does not exist" in done.stdout
    assert not (tmp_path / "xdg-cache").exists()
