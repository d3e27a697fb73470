"""The testbed's real Apptainer 1.4.5 runs rootless as the test user and builds the test
images from the local registry and from the saved formats; the SIFs run with the image's
Env, Entrypoint/Cmd, whiteouts applied; leftover squashfuse_ll processes are found."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.apptainer import stop_pids, stray_squashfuse, stray_starters
from tests.testbed.recipes import LONG_PATH


@pytest.fixture
def scratch(testbed: Any) -> Iterator[Callable[[str], Path]]:
    """testbed.user_dir(name), removed again after the test (SIFs and sandboxes are big)."""
    made: list[Path] = []

    def make(name: str) -> Path:
        made.append(testbed.user_dir(name))
        return made[-1]

    yield make
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def sifs(testbed: Any) -> Iterator[dict[str, Path]]:
    """busybox and debian-python built from the registry once for this module (the
    documented form: `apptainer build --no-https OUT.sif docker://127.0.0.1:5000/...`)."""
    out_dir = testbed.user_dir("apptainer-sifs")
    built: dict[str, Path] = {}
    for name in ("busybox", "debian-python"):
        sif = out_dir / f"{name}.sif"
        testbed.run_as_user(
            [testbed.apptainer, "build", "--no-https", sif, f"docker://{testbed.image(name).ref}"],
            cwd=out_dir,
            timeout=300,
        )
        built[name] = sif
    yield built
    shutil.rmtree(out_dir, ignore_errors=True)


def test_version_and_alias(testbed: Any) -> None:
    done = testbed.run_as_user(["apptainer", "--version"])
    assert done.stdout.strip() == "apptainer version 1.4.5"
    done = testbed.run_as_user(["singularity", "version"])
    assert done.stdout.strip() == "1.4.5"
    assert Path(testbed.env["PATH"].split(":")[0], "apptainer") == testbed.apptainer


def test_exec_is_rootless_from_squashfuse(testbed: Any, sifs: dict[str, Path]) -> None:
    done = testbed.run_as_user(
        ["apptainer", "-d", "exec", sifs["busybox"], "sh", "-c", "id -u; cat /etc/os-release"]
    )
    lines = done.stdout.splitlines()
    assert lines[0] == str(testbed.user.uid)
    assert "ID=hpcb-busybox" in lines
    # mounted with squashfuse in a user namespace, not extracted to a sandbox
    assert "Executing /usr/bin/squashfuse_ll" in done.stderr


def test_exec_sees_image_env_and_callers_cwd(
    testbed: Any, scratch: Any, sifs: dict[str, Path]
) -> None:
    work = scratch("exec-cwd")
    done = testbed.run_as_user(
        ["apptainer", "exec", sifs["busybox"], "sh", "-c", 'echo "$GREETING|$HPCB_IMAGE|$(pwd)"'],
        cwd=work,
    )
    assert done.stdout.strip() == f"hello world|busybox|{work}"


def test_run_uses_entrypoint_and_cmd(testbed: Any, sifs: dict[str, Path]) -> None:
    done = testbed.run_as_user(["apptainer", "run", sifs["busybox"]])
    assert "entrypoint args: default cmd" in done.stdout.splitlines()
    assert "greeting: hello world" in done.stdout.splitlines()
    done = testbed.run_as_user(["apptainer", "run", sifs["busybox"], "a", "b c"])
    assert "entrypoint args: a b c" in done.stdout.splitlines()
    done = testbed.run_as_user(["apptainer", "run", sifs["debian-python"]])
    assert done.stdout.strip() == "hello from debian-python"
    done = testbed.run_as_user(["apptainer", "run", sifs["debian-python"], "-c", "print(6 * 7)"])
    assert done.stdout.strip() == "42"


def test_debian_python(testbed: Any, sifs: dict[str, Path]) -> None:
    code = (
        "import os, sys; print(sys.version_info[:2], os.environ['HPCB_IMAGE'], os.environ['LANG'])"
    )
    done = testbed.run_as_user(["apptainer", "exec", sifs["debian-python"], "python3", "-c", code])
    assert done.stdout.strip() == "(3, 11) debian-python C.UTF-8"


def test_inspect_shows_image_labels(testbed: Any, sifs: dict[str, Path]) -> None:
    done = testbed.run_as_user(["apptainer", "inspect", "--json", sifs["busybox"]])
    labels = json.loads(done.stdout)["data"]["attributes"]["labels"]
    assert labels["org.hpcbridge.test"] == "busybox"
    assert labels["org.hpcbridge.note"] == "a label with spaces, 'quotes' and $dollar"
    assert labels["org.label-schema.usage.apptainer.version"] == "1.4.5"
    assert labels["org.label-schema.usage.singularity.deffile.from"] == testbed.image("busybox").ref


def test_whiteouts_applied(testbed: Any, scratch: Any) -> None:
    """Apptainer's own unpacking (umoci) of the whiteout image: the reference result
    hpcbridge's converter must match. A sandbox build skips mksquashfs (much faster)."""
    box = scratch("whiteout-sandbox") / "root"
    ref = testbed.image("whiteout").ref
    testbed.run_as_user(
        ["apptainer", "build", "--no-https", "--sandbox", box, f"docker://{ref}"], timeout=300
    )
    for gone in ("etc/issue", "usr/share/doc/python3", "usr/bin/pydoc3"):
        assert not os.path.lexists(box / gone), gone
    assert sorted(os.listdir(box / "etc/skel")) == ["hpcb-opaque.txt"]
    assert (box / "etc/hpcb-layer3.txt").read_text() == "added by layer 3\n"
    assert (box / "usr/bin/python3").exists()
    assert (box / "etc/os-release").exists()
    # type changes, hard links, odd names, long paths, symlinks
    assert (box / "usr/local/games").read_text() == "was a directory\n"
    assert sorted(os.listdir(box / "etc/motd")) == ["inside.txt"]
    a, b = (box / "opt/hpcb/hardlink-a").stat(), (box / "opt/hpcb/hardlink-b").stat()
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
    assert (box / "opt/hpcb/na\u00efve name with spaces.txt").exists()
    assert (box / LONG_PATH.lstrip("/")).read_text().startswith("a path longer than 100")
    assert os.readlink(box / "opt/hpcb/link-to-etc") == "../../etc"
    assert os.readlink(box / "opt/hpcb/dangling") == "/nowhere"


@pytest.mark.parametrize("kind", ["docker-archive", "oci-archive", "oci"])
def test_build_from_saved_formats(testbed: Any, scratch: Any, kind: str) -> None:
    img = testbed.image("busybox")
    source = {
        "docker-archive": f"docker-archive:{img.docker_archive}",
        "oci-archive": f"oci-archive:{img.oci_archive}",
        # Apptainer 1.4.5 takes `oci:DIR` (one image in index.json); `oci:DIR:TAG` fails
        "oci": f"oci:{img.oci_dir}",
    }[kind]
    out = scratch(f"from-{kind}") / "bb.sif"
    testbed.run_as_user(["apptainer", "build", out, source], timeout=300)
    done = testbed.run_as_user(["apptainer", "exec", out, "sh", "-c", "echo $GREETING"])
    assert done.stdout.strip() == "hello world"


@pytest.mark.parametrize(
    "variant", ["docker", "index", "docker-list", "index-layout", "zstd", "uncompressed"]
)
def test_build_from_busybox_variants(testbed: Any, scratch: Any, variant: str) -> None:
    """Docker schema 2 manifest, OCI index, Docker manifest list (amd64 picked), the OCI
    layout whose index.json names an index, zstd and uncompressed layers."""
    variants = testbed.state["images"]["busybox"]["variants"]
    if variant == "index-layout":
        source = f"oci:{variants['index']['oci_dir']}"
    else:
        source = f"docker://{variants[variant]['ref']}"
    out = scratch(f"variant-{variant}") / "bb.sif"
    testbed.run_as_user(["apptainer", "build", "--no-https", out, source], timeout=300)
    done = testbed.run_as_user(["apptainer", "exec", out, "sh", "-c", "echo $GREETING"])
    assert done.stdout.strip() == "hello world"


def test_build_flag_must_precede_arguments(testbed: Any, scratch: Any) -> None:
    """`--no-https` after the positional arguments is an error in 1.4.5."""
    out = scratch("flag-order") / "x.sif"
    done = testbed.run_as_user(
        ["apptainer", "build", out, f"docker://{testbed.image('busybox').ref}", "--no-https"],
        check=False,
    )
    assert done.returncode != 0
    assert "accepts 2 arg(s), received 3" in done.stderr


def _wait(cond: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return False


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def test_killed_wrapper_leaves_squashfuse_found_by_teardown(
    testbed: Any, sifs: dict[str, Path]
) -> None:
    """SIGKILL to the wrapper (bwrap) orphans Apptainer's starter, the container process
    and squashfuse_ll; stray_starters/stray_squashfuse find them, and a TERM to the
    starter ends its squashfuse_ll. (Only this test's processes are stopped here: other
    tests may be using the same test user.)"""
    uid = testbed.user.uid
    argv = [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={testbed.user.gid}",
        "--init-groups",
        str(testbed.apptainer),
        "exec",
        str(sifs["busybox"]),
        "sleep",
        "300",
    ]
    proc = subprocess.Popen(
        argv,
        env=dict(testbed.env),
        cwd=testbed.user.home,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    starters: list[int] = []
    fuses: list[int] = []
    try:

        def started() -> bool:
            starters[:] = _children(proc.pid)  # setpriv execs the wrapper, which execs bwrap
            fuses[:] = [
                c
                for s in starters
                for c in _children(s)
                if Path(f"/proc/{c}/comm").read_text().startswith("squashfuse")
            ]
            return bool(fuses)

        assert _wait(started), "no squashfuse_ll under the wrapper"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(0.5)
        assert all(Path(f"/proc/{pid}").exists() for pid in fuses), "squashfuse_ll died too"
        assert set(fuses) <= set(stray_squashfuse(testbed.state_dir, [uid]))
        assert set(starters) <= set(stray_starters(testbed.state_dir, [uid]))
        assert set(fuses) <= set(stray_squashfuse(testbed.state_dir))  # default: the test user
        stop_pids(starters)
        assert _wait(lambda: not set(fuses) & set(stray_squashfuse(testbed.state_dir, [uid])), 10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        stop_pids(p for p in starters + fuses if Path(f"/proc/{p}").exists())


def test_apptainer_does_not_create_missing_workdir(testbed: Any, sifs: dict[str, Path]) -> None:
    """busybox's WorkingDir is in no layer: `apptainer build` does not create it, and
    `--pwd` to it is fatal (exit 255). hpcbridge's converter has to create it."""
    workdir = "/work/not-in-layers"
    done = testbed.run_as_user(
        ["apptainer", "exec", "--pwd", workdir, sifs["busybox"], "pwd"], check=False
    )
    assert done.returncode == 255
    assert f"chdir {workdir}: no such file or directory" in done.stderr
    done = testbed.run_as_user(["apptainer", "exec", "--pwd", "/tmp", sifs["busybox"], "pwd"])
    assert done.stdout.strip() == "/tmp"


def test_plain_http_loopback_registry_flags(testbed: Any, scratch: Any) -> None:
    """Against the plain-HTTP registry on 127.0.0.1: `build` works even without
    `--no-https` (its fetch treats loopback as HTTP), but `pull` and `exec docker://`
    need `--no-https` (their checksum step tries HTTPS first)."""
    work = scratch("no-https")
    env = {"APPTAINER_CACHEDIR": str(work / "cache")}  # nothing cached from other tests
    uri = f"docker://{testbed.image('busybox').ref}"
    testbed.run_as_user(["apptainer", "build", work / "a.sif", uri], env=env, timeout=300)
    done = testbed.run_as_user(["apptainer", "pull", work / "b.sif", uri], env=env, check=False)
    assert done.returncode != 0
    assert "server gave HTTP response to HTTPS client" in done.stderr
    testbed.run_as_user(["apptainer", "pull", "--no-https", work / "b.sif", uri], env=env)
    done = testbed.run_as_user(
        ["apptainer", "exec", "--no-https", uri, "sh", "-c", "echo $GREETING"], env=env
    )
    assert done.stdout.strip() == "hello world"
    pinned = f"docker://127.0.0.1:5000/hpcb/busybox@{testbed.image('busybox').digest}"
    done = testbed.run_as_user(
        ["apptainer", "exec", "--no-https", pinned, "sh", "-c", "echo $HPCB_IMAGE"], env=env
    )
    assert done.stdout.strip() == "busybox"
