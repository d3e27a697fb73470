"""Building the testbed images' layers: recipe chains and their cache keys, root
filesystems (debootstrap, apt in a chroot), and layer blobs (see image_layers.py).

Used by tests/testbed/images.py; the recipes are in tests/testbed/recipes/.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from tests.testbed import image_layers as L
from tests.testbed.apptainer import debian_mirror
from tests.testbed.recipes import MPI_HELLO, MPI_HELLO_SOURCE, RECIPE_DIR, RECIPES

BUILDER_VERSION = "1"
BUSYBOX = Path("/bin/busybox")


def canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def layer_specs(name: str) -> list[dict[str, Any]]:
    recipe = RECIPES[name]
    parent = recipe.get("parent")
    return (layer_specs(parent) if parent else []) + list(recipe["layers"])


def _host_inputs(spec: dict[str, Any]) -> dict[str, Any]:
    """Everything outside the recipe data a layer depends on."""
    out: dict[str, Any] = {}
    for dest, src in sorted(spec.get("files", {}).items()):
        if spec["kind"] != "entries":
            out[dest] = file_sha(RECIPE_DIR / src)
    if spec["kind"] == "busybox":
        out["busybox"] = file_sha(BUSYBOX)
    if spec.get("pin_host_versions"):
        out["versions"] = {p: L.host_package_version(p) for p in spec["packages"]}
    if spec.get("mpi_hello"):
        out["hello"] = file_sha(RECIPE_DIR / MPI_HELLO_SOURCE)
        out["mpi-dev"] = {p: L.host_package_version(p) for p in ("libopenmpi-dev", "libmpich-dev")}
    return out


def layer_keys(specs: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    prev = BUILDER_VERSION
    for spec in specs:
        prev = sha(canon([prev, spec, _host_inputs(spec)]))
        keys.append(prev)
    return keys


class Store:
    """cache_dir/images: blobs/, layers/<key>.json, rootfs/<key>/, <name>-<key>/ outputs."""

    def __init__(self, cache_dir: Path) -> None:
        self.root = Path(cache_dir) / "images"
        self.blobs = self.root / "blobs"
        self.layers = self.root / "layers"
        self.rootfs = self.root / "rootfs"
        self.logs = self.root / "logs"
        self.built = False
        for d in (self.blobs, self.layers, self.rootfs, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)

    def blob_path(self, digest: str) -> Path:
        return self.blobs / "sha256" / digest.split(":", 1)[1]


# ---------------------------------------------------------------------------------------
# root filesystems (only layers that later layers build on need one)


def _ensure_rootfs(store: Store, specs: list[dict[str, Any]], keys: list[str], i: int) -> Path:
    done = store.rootfs / keys[i]
    if (done / ".hpcb-complete").exists():
        return done
    spec = specs[i]
    tmp = store.rootfs / f"{keys[i]}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    log = store.logs / f"rootfs-{keys[i][:16]}.log"
    log.write_bytes(b"")
    if spec["kind"] == "debootstrap":
        L.run_logged(
            [
                "debootstrap",
                f"--variant={spec['variant']}",
                spec["suite"],
                str(tmp),
                debian_mirror(),
            ],
            log,
        )
    elif spec["kind"] == "apt":
        lower = _ensure_rootfs(store, specs, keys, i - 1)
        L.run_logged(["cp", "-a", "--reflink=auto", str(lower), str(tmp)], log)
        (tmp / ".hpcb-complete").unlink(missing_ok=True)
        _apt_step(tmp, spec, log)
    else:
        raise RuntimeError(f"a {spec['kind']!r} layer cannot be the base of an apt layer")
    L.clean_rootfs(tmp)
    (tmp / ".hpcb-complete").touch()
    if done.exists():
        shutil.rmtree(done)
    tmp.rename(done)
    return done


def _apt_step(root: Path, spec: dict[str, Any], log: Path) -> None:
    shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
    (root / "etc/apt/sources.list").write_text(_sources_line(root))
    env = L.chroot_env()
    L.run_logged(["chroot", str(root), "apt-get", "-q", "update"], log, env)
    packages = list(spec["packages"])
    if spec.get("pin_host_versions"):
        pinned = [f"{p}={v}" for p in packages if (v := L.host_package_version(p))]
        argv = ["chroot", str(root), "apt-get", "-q", "install", "-y", "--no-install-recommends"]
        try:
            L.run_logged(argv + pinned, log, env)
        except RuntimeError:  # the mirror moved on: take its version (labels say which)
            L.run_logged(argv + packages, log, env)
    else:
        L.run_logged(
            [
                "chroot",
                str(root),
                "apt-get",
                "-q",
                "install",
                "-y",
                "--no-install-recommends",
                *packages,
            ],
            log,
            env,
        )
    L.run_logged(["chroot", str(root), "apt-get", "clean"], log, env)
    for d in spec.get("mkdirs", []):
        (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for dest, src in spec.get("files", {}).items():
        target = root / dest.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(RECIPE_DIR / src, target)
    if spec.get("mpi_hello"):
        for dest, cc, flavour in MPI_HELLO:
            target = root / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            L.run_logged(
                [
                    cc,
                    "-O2",
                    f'-DFLAVOUR="{flavour}"',
                    "-o",
                    str(target),
                    str(RECIPE_DIR / MPI_HELLO_SOURCE),
                ],
                log,
            )


def _sources_line(root: Path) -> str:
    suite = "bookworm"
    try:
        for line in (root / "etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                suite = line.split("=", 1)[1].strip('"') or suite
    except OSError:
        pass
    return f"deb {debian_mirror()} {suite} main\n"


# ---------------------------------------------------------------------------------------
# layers


def _busybox_fill(spec: dict[str, Any]) -> Any:
    applets = subprocess.run(
        [str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True
    ).stdout.split()

    def fill(tar: tarfile.TarFile) -> None:
        entries: dict[str, tuple[str, Any]] = {}
        for d, mode in (
            ("bin", 0o755),
            ("etc", 0o755),
            ("root", 0o700),
            ("tmp", 0o1777),
            ("usr", 0o755),
            ("usr/bin", 0o755),
            ("usr/sbin", 0o755),
            ("sbin", 0o755),
            ("usr/local", 0o755),
            ("usr/local/bin", 0o755),
            ("var", 0o755),
            ("home", 0o755),
        ):
            entries[d] = ("dir", mode)
        entries["bin/busybox"] = ("host", str(BUSYBOX))
        for applet in applets:
            if applet != "bin/busybox":
                entries[applet] = ("link", "/bin/busybox")
        entries["etc/passwd"] = (
            "data",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )
        entries["etc/group"] = ("data", b"root:x:0:\nnogroup:x:65534:\n")
        entries["etc/os-release"] = ("data", b'NAME="hpcbridge testbed busybox"\nID=hpcb-busybox\n')
        for dest, src in spec.get("files", {}).items():
            entries[dest.lstrip("/")] = ("host", str(RECIPE_DIR / src))
        for rel in sorted(entries):
            kind, value = entries[rel]
            if kind == "dir":
                L.add_dir(tar, rel, value)
            elif kind == "link":
                L.add_symlink(tar, rel, value)
            elif kind == "data":
                L.add_file(tar, rel, value)
            else:
                data = Path(value).read_bytes()
                L.add_file(tar, rel, data, os.stat(value).st_mode & 0o7777)

    return fill


def _entries_fill(spec: dict[str, Any]) -> Any:
    def fill(tar: tarfile.TarFile) -> None:
        entries: dict[str, tuple[str, bytes]] = {}
        for path in spec.get("whiteouts", []):
            head, _, name = path.strip("/").rpartition("/")
            entries[(head + "/" if head else "") + ".wh." + name] = ("file", b"")
        for path in spec.get("opaque", []):
            entries[path.strip("/")] = ("dir", b"")
            entries[path.strip("/") + "/.wh..wh..opq"] = ("file", b"")
        for path in spec.get("dirs", []):
            entries[path.strip("/")] = ("dir", b"")
        for path, text in spec.get("files", {}).items():
            entries[path.strip("/")] = ("file", text.encode())
        for path, target in spec.get("symlinks", {}).items():
            entries[path.strip("/")] = ("symlink", target.encode())
        for path, target in spec.get("hardlinks", {}).items():
            if target.strip("/") >= path.strip("/") or target.strip("/") not in entries:
                raise ValueError(f"hard link {path}: its target {target} must sort before it")
            entries[path.strip("/")] = ("hardlink", target.strip("/").encode())
        for rel in list(entries):
            parts = rel.split("/")
            for i in range(1, len(parts)):
                entries.setdefault("/".join(parts[:i]), ("dir", b""))
        for rel in sorted(entries):
            kind, data = entries[rel]
            if kind == "dir":
                L.add_dir(tar, rel)
            elif kind == "symlink":
                L.add_symlink(tar, rel, data.decode())
            elif kind == "hardlink":
                L.add_hardlink(tar, rel, data.decode())
            else:
                L.add_file(tar, rel, data)

    return fill


def ensure_layer(store: Store, specs: list[dict[str, Any]], keys: list[str], i: int) -> L.LayerBlob:
    meta = store.layers / f"{keys[i]}.json"
    if meta.exists():
        info = json.loads(meta.read_text())
        if store.blob_path(info["digest"]).exists():
            return L.LayerBlob(**info)
    spec = specs[i]
    kind = spec["kind"]
    if kind == "busybox":
        blob = L.write_layer(store.blobs, _busybox_fill(spec), "busybox-static applets")
    elif kind == "entries":
        blob = L.write_layer(store.blobs, _entries_fill(spec), f"entries {canon(spec).decode()}")
    elif kind == "debootstrap":
        root = _ensure_rootfs(store, specs, keys, i)
        desc = f"debootstrap --variant={spec['variant']} {spec['suite']}"
        blob = L.write_layer(store.blobs, L.full_layer(root), desc)
    elif kind == "apt":
        lower = _ensure_rootfs(store, specs, keys, i - 1)
        upper = _ensure_rootfs(store, specs, keys, i)
        desc = "apt-get install " + " ".join(spec["packages"])
        blob = L.write_layer(store.blobs, L.diff_layer(lower, upper), desc)
    else:
        raise ValueError(f"unknown layer kind {kind!r}")
    meta.write_text(json.dumps(blob.to_dict()) + "\n")
    return blob


def extra_labels(store: Store, specs: list[dict[str, Any]], keys: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for i, spec in enumerate(specs):
        if spec.get("pin_host_versions"):
            versions = L.installed_versions(store.rootfs / keys[i], spec["packages"])
            for pkg, ver in sorted(versions.items()):
                labels[f"org.hpcbridge.package.{pkg}"] = ver
    return labels
