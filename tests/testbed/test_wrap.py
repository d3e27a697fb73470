"""``hpcbridge wrap`` on the testbed: a wrapper runs python3 from the debian-python image
through the real Apptainer 1.4.5, as the test user, with the caller's working directory,
arguments, stdin and exit status passed through exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.testbed.api import Testbed

pytestmark = pytest.mark.testbed

MODULES_INIT = Path("/usr/share/modules/init/bash")  # Environment Modules (Tcl files)
LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")  # Lmod (Lua files)
ARGS = ["a b", "", "$HOME", "it's", '"quoted"', "*", "-c", "tab\there", "line\nbreak", "é ü", "\\"]
PROGRAM = (
    "import json, os, sys; "
    "print(json.dumps({'cwd': os.getcwd(), 'argv': sys.argv[1:], 'stdin': sys.stdin.read()})); "
    "sys.exit(7)"
)


def test_wrapper_is_a_drop_in_python3(testbed: Testbed, user_dir: Path) -> None:
    tb = testbed
    image = tb.image("debian-python")
    res = tb.hpcbridge(
        "wrap", image.ref, "python3", "--dir", "bin", "--module", "modulefiles/pytool/1.0",
        "--json", cwd=user_dir, check=True, timeout=900,
    )  # fmt: skip
    doc = json.loads(res.stdout)
    assert doc["digest"] == image.digest
    wrapper = user_dir / "bin" / "python3"
    text = wrapper.read_text()
    assert image.digest in text and doc["sif"] in text  # pinned by digest
    assert os.stat(wrapper).st_mode & 0o111

    work = user_dir / "a dir with spaces"
    work.mkdir()
    os.chown(work, tb.user.uid, tb.user.gid)
    done = tb.run_as_user(
        [str(wrapper), "-c", PROGRAM, *ARGS], cwd=work, input="from stdin\n", check=False
    )
    assert done.returncode == 7, done.stderr
    got = json.loads(done.stdout)
    assert got == {"cwd": str(work), "argv": ARGS, "stdin": "from stdin\n"}


@pytest.mark.skipif(
    not (MODULES_INIT.exists() or LMOD_INIT.exists()), reason="no module system installed"
)
def test_module_file_puts_the_wrappers_on_path(testbed: Testbed, user_dir: Path) -> None:
    """The Tcl module file, loaded by Environment Modules or by Lmod (which reads Tcl too)."""
    tb = testbed
    image = tb.image("debian-python")
    tb.hpcbridge(
        "wrap", image.ref, "python3", "--dir", "bin", "--module", "modulefiles/pytool/1.0",
        cwd=user_dir, check=True, timeout=900,
    )  # fmt: skip
    init = MODULES_INIT if MODULES_INIT.exists() else LMOD_INIT
    script = (
        f". {init}\n"
        f"module use {user_dir}/modulefiles\n"
        "module load pytool/1.0\n"
        "command -v python3\n"
        "python3 -c 'import sys; print(sys.version_info[:2] >= (3, 11))'\n"
    )
    done = tb.run_as_user(["bash", "-c", script], cwd=user_dir)
    assert done.stdout.splitlines() == [str(user_dir / "bin" / "python3"), "True"]


@pytest.mark.skipif(not LMOD_INIT.exists(), reason="lmod not installed")
def test_lua_module_file_loads_with_lmod(testbed: Testbed, user_dir: Path) -> None:
    tb = testbed
    image = tb.image("debian-python")
    tb.hpcbridge(
        "wrap", image.ref, "python3", "--dir", "bin", "--module", "lmod/pytools/bookworm.lua",
        cwd=user_dir, check=True, timeout=900,
    )  # fmt: skip
    script = (
        f". {LMOD_INIT}\n"
        f"module use {user_dir}/lmod\n"
        "module load pytools/bookworm\n"
        "command -v python3\n"
        "python3 -c 'print(6 * 7)'\n"
    )
    done = tb.run_as_user(["bash", "-c", script], cwd=user_dir)
    assert done.stdout.splitlines() == [str(user_dir / "bin" / "python3"), "42"]
