"""``hpcbridge config example``: the site configurations shipped with hpcbridge, listed and copied."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from hpcbridge import runner
from hpcbridge.site_examples import examples_dir

HPCBRIDGE = str(Path(sys.executable).with_name("hpcbridge"))


def run(tmp: Path, *args: str) -> runner.Completed:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp / "home")}
    return runner.run([HPCBRIDGE, "config", *args], env=env, cwd=tmp, check=False, timeout=60)


def test_list_names_every_shipped_example(tmp_path: Path) -> None:
    done = run(tmp_path, "example")
    assert done.returncode == 0, done.stderr
    names = sorted(p.stem for p in examples_dir().glob("*.toml"))
    assert [line.split()[0] for line in done.stdout.splitlines()[:-1]] == names
    assert re.search(r"^generic-cpu +a generic CPU-only cluster\.$", done.stdout, re.M)
    assert done.stdout.splitlines()[-1].startswith(f"(in {examples_dir()};")


def test_copy_one_then_use_it_as_the_site_file(tmp_path: Path) -> None:
    done = run(tmp_path, "example", "generic-cpu", "-o", "site.toml")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site.toml").read_text() == (examples_dir() / "generic-cpu.toml").read_text()
    printed = run(tmp_path, "example", "generic-cpu.toml")
    assert printed.stdout == (tmp_path / "site.toml").read_text()
    check = run(tmp_path, "check", "site.toml")
    assert check.returncode == 0 and check.stdout == "site.toml: ok\n", check.stderr
    again = run(tmp_path, "example", "generic-cpu", "-o", "site.toml")
    assert again.returncode == 3 and again.stderr.count("\n") == 1
    assert "site.toml already exists" in again.stderr


def test_unknown_name_is_one_line(tmp_path: Path) -> None:
    done = run(tmp_path, "example", "nope")
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr == (
        "hpcbridge: error: no example site configuration 'nope' (choose one of: "
        + ", ".join(sorted(p.stem for p in examples_dir().glob("*.toml")))
        + ")\n"
    )
    assert not (tmp_path / "home").exists()
