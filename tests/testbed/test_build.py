"""Native SIF build on the testbed, side by side with the real Apptainer 1.4.5.

The native SIFs are built *as the test user* (non-root: real permission
handling) from the testbed images' OCI layouts, read directly here so the build
side is tested independently of the fetch side; the reference SIFs are made by
``apptainer build`` as the same user from the local registry.  Then both run
under the real Apptainer as the test user and are compared: run/exec behaviour,
inspect output, siftool descriptor types, the squashfs file lists and the bytes
of every scaffold file.  Run as ``python -m tests.testbed.test_build OCI_DIR OUT
WORKDIR SOURCE_REF MODE`` it performs one build (what the tests run as the user).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import IO, Any

import pytest

from tests.testbed.api import Testbed
from tests.testbed.users import REPO

pytestmark = pytest.mark.testbed

SD = ".singularity.d"


class OCILayoutLayer:
    def __init__(self, root: Path, desc: dict[str, Any]) -> None:
        self.root = root
        self.digest = str(desc["digest"])
        self.media_type = str(desc["mediaType"])
        self.size = int(desc["size"])

    def open(self) -> IO[bytes]:
        return open(self.root / "blobs" / "sha256" / self.digest.split(":", 1)[1], "rb")


def read_layout(oci_dir: Path) -> tuple[str, list[OCILayoutLayer], dict[str, Any]]:
    def blob(digest: str) -> Any:
        return json.loads((oci_dir / "blobs" / "sha256" / digest.split(":", 1)[1]).read_text())

    index = json.loads((oci_dir / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = blob(digest)
    return (
        digest,
        [OCILayoutLayer(oci_dir, d) for d in manifest["layers"]],
        blob(manifest["config"]["digest"]),
    )


def main(argv: list[str]) -> None:
    from hpcbridge.images.sif.native import build_sif

    oci_dir, out, workdir, source_ref, mode = argv
    digest, layers, config = read_layout(Path(oci_dir))
    build_sif(
        layers,
        config,
        manifest_digest=digest,
        source_ref=source_ref,
        out=Path(out),
        workdir=Path(workdir),
        mode=mode,
    )


# ---------------------------------------------------------------- fixtures


class Builds:
    """Builds SIFs once per module, as the test user."""

    def __init__(self, tb: Testbed) -> None:
        self.tb = tb
        self.dir = tb.user_dir("native-build")
        self.native: dict[str, Path] = {}
        self.ref: dict[str, Path] = {}
        self.count = 0

    def build_native(self, name: str, mode: str = "auto") -> Path:
        self.count += 1
        img = self.tb.image(name)
        out = self.dir / f"{name}-native-{self.count}.sif"
        work = self.dir / f"work-{self.count}"
        self.tb.run_as_user(["mkdir", str(work)])
        self.tb.run_as_user(
            [
                str(REPO / ".venv/bin/python"),
                "-m",
                "tests.testbed.test_build",
                str(img.oci_dir),
                str(out),
                str(work),
                f"docker://{img.ref}",
                mode,
            ],
            cwd=REPO,
            timeout=900,
        )
        assert not any(work.iterdir()), "the build left files in its workdir"
        return out

    def native_sif(self, name: str) -> Path:
        if name not in self.native:
            self.native[name] = self.build_native(name)
        return self.native[name]

    def ref_sif(self, name: str) -> Path:
        if name not in self.ref:
            img = self.tb.image(name)
            out = self.dir / f"{name}-apptainer.sif"
            self.tb.run_as_user(
                [str(self.tb.apptainer), "build", "--no-https", str(out), f"docker://{img.ref}"],
                timeout=900,
            )
            self.ref[name] = out
        return self.ref[name]


@pytest.fixture(scope="module")
def builds(testbed: Testbed) -> Builds:
    return Builds(testbed)


def apptainer(tb: Testbed, *args: str) -> str:
    return tb.run_as_user([str(tb.apptainer), *args], timeout=300).stdout


def partition(path: Path) -> tuple[int, int]:
    from hpcbridge.images.sif import format as sif

    with open(path, "rb") as f:
        p = sif.read_sif(f).primary_partition()
    return p.offset, p.size


def squash_list(tb: Testbed, path: Path) -> list[str]:
    off, _ = partition(path)
    out = tb.run(["unsquashfs", "-o", str(off), "-lls", "-d", "", str(path)], timeout=300).stdout
    return [line for line in out.splitlines() if line[:1] in "-dlcbps" and " " in line]


def names(listing: list[str]) -> list[str]:
    """Paths (``a/b``, ``link -> target``) of an ``unsquashfs -lls -d ''`` listing, root left out."""
    split = (re.split(r"\s+\d{4}-\d\d-\d\d \d\d:\d\d ", line, maxsplit=1)[1] for line in listing)
    return sorted(n.lstrip("/") for n in split if n.lstrip("/"))


def cat(tb: Testbed, path: Path, member: str) -> bytes:
    off, _ = partition(path)
    return tb.run(
        ["unsquashfs", "-o", str(off), "-cat", str(path), member], timeout=120
    ).stdout.encode()


def siftool_types(tb: Testbed, path: Path) -> list[str]:
    out = tb.run(["siftool", "list", str(path)]).stdout
    return [
        line.split("|")[-1].strip() for line in out.splitlines() if re.match(r"^\d+\s+\|", line)
    ]


# ---------------------------------------------------------------- tests


def test_busybox_runs_like_the_apptainer_build(testbed: Testbed, builds: Builds) -> None:
    native, ref = builds.native_sif("busybox"), builds.ref_sif("busybox")
    assert native.stat().st_mode & 0o777 == 0o755
    for sif in (native, ref):
        out = apptainer(testbed, "run", str(sif))
        assert "entrypoint args: default cmd" in out
    assert apptainer(testbed, "run", str(native)) == apptainer(testbed, "run", str(ref))
    args = ["a b", "it's", "$HOME", '"q"']
    assert apptainer(testbed, "run", str(native), *args) == apptainer(
        testbed, "run", str(ref), *args
    )
    assert apptainer(testbed, "run", "--no-eval", str(native), *args) == apptainer(
        testbed, "run", "--no-eval", str(ref), *args
    )
    env = dict(
        line.split("=", 1)
        for line in apptainer(testbed, "exec", str(native), "env").splitlines()
        if "=" in line
    )
    assert env["GREETING"] == "hello world" and env["HPCB_IMAGE"] == "busybox"
    # the image Env wins over the host's, as with apptainer's own build
    out = testbed.run_as_user(
        [str(testbed.apptainer), "exec", str(native), "sh", "-c", "echo $GREETING"],
        env={"GREETING": "from host"},
    ).stdout
    assert out.strip() == "hello world"
    assert (
        apptainer(testbed, "exec", "--cwd", "/work/not-in-layers", str(native), "pwd").strip()
        == "/work/not-in-layers"
    )


def test_inspect_shows_labels_runscript_env_and_deffile(testbed: Testbed, builds: Builds) -> None:
    native, ref = builds.native_sif("busybox"), builds.ref_sif("busybox")
    meta = json.loads(apptainer(testbed, "inspect", "--json", str(native)))
    labels = meta["data"]["attributes"]["labels"]
    assert labels["org.hpcbridge.test"] == "busybox"
    assert labels["org.hpcbridge.note"] == "a label with spaces, 'quotes' and $dollar"
    assert labels["org.opencontainers.image.base.digest"] == testbed.image("busybox").digest
    for flag in ("--runscript", "--environment", "--deffile"):
        assert apptainer(testbed, "inspect", flag, str(native)) == apptainer(
            testbed, "inspect", flag, str(ref)
        ), flag
    ref_labels = json.loads(apptainer(testbed, "inspect", "--json", str(ref)))["data"][
        "attributes"
    ]["labels"]
    ignore = {"org.label-schema.build-date", "org.label-schema.usage.apptainer.version"}
    for key, value in ref_labels.items():
        if key not in ignore:
            assert labels[key] == value, key


def test_siftool_lists_the_same_descriptor_types(testbed: Testbed, builds: Builds) -> None:
    for name in ("busybox", "whiteout"):
        native, ref = builds.native_sif(name), builds.ref_sif(name)
        assert (
            siftool_types(testbed, native)
            == siftool_types(testbed, ref)
            == [
                "Def.FILE",
                "JSON.Generic",
                "JSON.Generic",
                "FS (Squashfs/*System/amd64)",
            ]
        )
        assert partition(native)[0] % 4096 == 0


def test_scaffold_files_are_byte_identical(testbed: Testbed, builds: Builds) -> None:
    native, ref = builds.native_sif("busybox"), builds.ref_sif("busybox")
    ref_names = names(squash_list(testbed, ref))
    native_names = names(squash_list(testbed, native))
    scaffold = [n for n in ref_names if n.startswith((f"{SD}/", ".")) or "/" not in n]
    # the same files, dirs and symlinks (with the same targets) at the top and in /.singularity.d
    assert [n for n in native_names if n in scaffold] == scaffold
    files = [
        f"{SD}/{p}"
        for p in (
            "actions/exec",
            "actions/run",
            "actions/shell",
            "actions/start",
            "actions/test",
            "env/01-base.sh",
            "env/10-docker2singularity.sh",
            "env/90-environment.sh",
            "env/94-appsbase.sh",
            "env/95-apps.sh",
            "env/99-base.sh",
            "env/99-runtimevars.sh",
            "runscript",
            "startscript",
            "Singularity",
        )
    ]
    assert set(files) <= set(scaffold)
    for member in [*files, "etc/hosts", "etc/resolv.conf"]:
        assert cat(testbed, native, member) == cat(testbed, ref, member), member


def test_whiteout_image_file_list_equals_apptainers(testbed: Testbed, builds: Builds) -> None:
    native, ref = builds.native_sif("whiteout"), builds.ref_sif("whiteout")
    n_list, r_list = names(squash_list(testbed, native)), names(squash_list(testbed, ref))
    assert n_list == r_list
    assert "etc/issue" not in n_list and "usr/bin/pydoc3" not in n_list
    assert "etc/skel/hpcb-opaque.txt" in n_list and "etc/skel/.bashrc" not in n_list
    out = apptainer(testbed, "run", str(native))
    assert out == apptainer(testbed, "run", str(ref))
    # a CMD-only image: the runscript template's other branch, byte for byte
    for member in (f"{SD}/runscript", f"{SD}/env/10-docker2singularity.sh"):
        assert cat(testbed, native, member) == cat(testbed, ref, member), member


def test_dir_mode_gives_the_same_file_list(testbed: Testbed, builds: Builds) -> None:
    """squashfs-tools < 4.5 fallback: extract a rootfs, squash the directory."""
    streamed = builds.native_sif("whiteout")
    extracted = builds.build_native("whiteout", mode="dir")
    assert names(squash_list(testbed, extracted)) == names(squash_list(testbed, streamed))
    assert apptainer(testbed, "run", str(extracted)) == apptainer(testbed, "run", str(streamed))


def test_debian_python_runs(testbed: Testbed, builds: Builds) -> None:
    native = builds.native_sif("debian-python")
    assert apptainer(testbed, "run", str(native)).strip() == "hello from debian-python"
    assert (
        apptainer(
            testbed, "run", str(native), "-c", "import sys; print(sys.argv[1:])", "x y"
        ).strip()
        == "['x y']"
    )
    out = apptainer(
        testbed,
        "exec",
        str(native),
        "python3",
        "-c",
        "import os, json; print(os.environ['HPCB_IMAGE'])",
    )
    assert out.strip() == "debian-python"


def test_same_digest_twice_gives_the_same_bytes(testbed: Testbed, builds: Builds) -> None:
    for name in ("busybox", "debian-python"):
        first = builds.native_sif(name)
        second = builds.build_native(name)
        assert (
            hashlib.sha256(first.read_bytes()).hexdigest()
            == hashlib.sha256(second.read_bytes()).hexdigest()
        )


if __name__ == "__main__":
    main(sys.argv[1:])


def variant_layout(tb: Testbed, base: Path, dest: Path, patch: dict[str, Any]) -> Path:
    """A copy of OCI layout ``base`` whose image config ``config`` section is updated by ``patch``."""
    import shutil

    shutil.copytree(base, dest)
    digest, _layers, config = read_layout(dest)
    config["config"] = {**config["config"], **patch}
    for key, value in patch.items():
        if value is None:
            del config["config"][key]

    def put(obj: Any) -> tuple[str, int]:
        data = json.dumps(obj).encode()
        hexd = hashlib.sha256(data).hexdigest()
        (dest / "blobs" / "sha256" / hexd).write_bytes(data)
        return "sha256:" + hexd, len(data)

    manifest = json.loads((dest / "blobs" / "sha256" / digest.split(":", 1)[1]).read_text())
    manifest["config"]["digest"], manifest["config"]["size"] = put(config)
    index = json.loads((dest / "index.json").read_text())
    index["manifests"][0]["digest"], index["manifests"][0]["size"] = put(manifest)
    (dest / "index.json").write_text(json.dumps(index))
    for p in [dest, *dest.rglob("*")]:
        os.chown(p, tb.user.uid, tb.user.gid)
    return dest


@pytest.mark.parametrize(
    "patch",
    [
        {"Entrypoint": ["/bin/echo", "it's", 'a "b" $c `d` \\e'], "Cmd": None},
        {"Entrypoint": None, "Cmd": None},
        {
            "Env": [
                "PATH=/bin:/usr/bin",
                'Q=it\'s "x" $y `z` \\w',
                "EMPTY=",
                "NOVALUE",
                "bad-name=1",
                "U=é",
            ]
        },
    ],
    ids=["entrypoint-only", "neither", "tricky-env"],
)
def test_runscript_and_env_variants_match_apptainer(
    testbed: Testbed, builds: Builds, patch: dict[str, Any]
) -> None:
    img = testbed.image("busybox")
    work = testbed.user_dir("variant")
    layout = variant_layout(testbed, img.oci_dir, work / "oci", patch)
    ref = work / "ref.sif"
    testbed.run_as_user([str(testbed.apptainer), "build", str(ref), f"oci:{layout}"], timeout=600)
    native = work / "native.sif"
    wd = work / "wd"
    testbed.run_as_user(["mkdir", str(wd)])
    testbed.run_as_user(
        [
            str(REPO / ".venv/bin/python"),
            "-m",
            "tests.testbed.test_build",
            str(layout),
            str(native),
            str(wd),
            f"oci:{layout}",
            "auto",
        ],
        cwd=REPO,
        timeout=600,
    )
    for member in (f"{SD}/runscript", f"{SD}/env/10-docker2singularity.sh"):
        assert cat(testbed, native, member) == cat(testbed, ref, member), member
    if "Entrypoint" in patch and patch["Entrypoint"] is None and patch.get("Cmd") is None:
        return  # nothing to run: the runscript's `set` prints the shell's variables (PPID...)
    for args in ([], ["x y", "$HOME"]):
        got = apptainer(testbed, "run", str(native), *args).replace("native.sif", "X.sif")
        assert got == apptainer(testbed, "run", str(ref), *args).replace("ref.sif", "X.sif")
