"""``render`` / ``submit --dry-run`` preview the image: manifest and config only, never a layer.

Against the tiny real registry of tests/unit/images_support.py (a peer on
127.0.0.1, in this process): the requests are counted, the cache is looked at
afterwards.  Offline, or with the registry gone, the script is printed with the
image marked UNRESOLVED and one note line on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hpcbridge import runner
from hpcbridge.images.cache import Cache
from tests.golden.support import SITE
from tests.unit.images_support import Registry, make_image

HPCBRIDGE = str(Path(sys.executable).with_name("hpcbridge"))
IMG = make_image([{"bin/hello": b"#!/bin/sh\necho hi\n"}], cmd=["/bin/hello"])


def run(tmp_path: Path, image: str, *args: str) -> runner.Completed:
    (tmp_path / "job.toml").write_text(
        f'name = "p"\nimage = "{image}"\ncommand = ["hello"]\n[resources]\ntime = "00:05:00"\n'
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "HPCBRIDGE_SITE_CONFIG": str(SITE),
    }
    return runner.run([HPCBRIDGE, *args], env=env, cwd=tmp_path, check=False, timeout=60)


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_render_resolves_digest_and_workdir_without_layers(tmp_path: Path) -> None:
    with Registry() as reg:
        reg.push("app", "v1", IMG)
        image = f"docker://{reg.host}/app:v1"
        done = run(tmp_path, image, "render", "job.toml")
        requests = reg.requests()
        dry = run(tmp_path, image, "submit", "--dry-run", "job.toml")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    cache = Cache(tmp_path / "cache" / "hpcbridge")
    assert f"#   digest {IMG.digest}, SIF sha256 not converted yet" in done.stdout
    assert str(cache.sif_path(IMG.digest)) in done.stdout
    assert "--pwd /work" in done.stdout  # the image's WorkingDir, as submit runs it
    assert requests == [
        "/v2/app/manifests/v1",
        f"/v2/app/manifests/{IMG.digest}",
        f"/v2/app/blobs/{IMG.config_digest}",
    ]
    assert files_under(cache.root / "blobs") == []
    assert not cache.sif_path(IMG.digest).exists()
    assert dry.returncode == 0 and dry.stdout == done.stdout


def test_unreachable_registry_prints_the_script_marked_unresolved(tmp_path: Path) -> None:
    with Registry() as reg:
        host = reg.host  # closed when the block ends: connections are refused
    done = run(tmp_path, f"docker://{host}/app:v1", "render", "job.toml")
    assert done.returncode == 0, done.stderr
    notes = done.stderr.splitlines()
    assert len(notes) == 1 and notes[0].startswith("hpcbridge: note: image docker://"), notes
    assert "UNRESOLVED" in notes[0] and "cannot reach" in notes[0]
    assert f"UNRESOLVED:docker://{host}/app:v1" in done.stdout
    assert "#   digest UNRESOLVED" in done.stdout
    assert not (tmp_path / "cache").exists()


def test_offline_asks_no_registry(tmp_path: Path) -> None:
    with Registry() as reg:
        reg.push("app", "v1", IMG)
        done = run(tmp_path, f"docker://{reg.host}/app:v1", "render", "--offline", "job.toml")
        assert reg.requests() == []
    assert done.returncode == 0, done.stderr
    assert "offline" in done.stderr and "UNRESOLVED" in done.stdout
    assert not (tmp_path / "cache").exists()
