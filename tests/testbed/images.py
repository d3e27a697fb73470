"""The testbed's images, built without Docker and pushed to the local registry.

``ensure_images`` builds every image of tests/testbed/recipes once (cached under a hash
of its recipe chain and host inputs), writes it as an OCI layout, a docker-archive and an
oci-archive, and pushes it to the registry when the registry lacks it (e.g. after the
registry's storage was wiped). Warm calls only ask the registry for each manifest digest.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from tests.testbed import image_layers as L
from tests.testbed.apptainer import debian_mirror
from tests.testbed.recipes import CREATED, MPI_HELLO, MPI_HELLO_SOURCE, RECIPE_DIR, RECIPES
from tests.testbed.registry import manifest_digest

BUILDER_VERSION = "1"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
REPO_PREFIX = "hpcb"
BUSYBOX = Path("/bin/busybox")
POLICY = '{"default": [{"type": "insecureAcceptAnything"}]}\n'


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha(path: Path) -> str:
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
            out[dest] = _file_sha(RECIPE_DIR / src)
    if spec["kind"] == "busybox":
        out["busybox"] = _file_sha(BUSYBOX)
    if spec.get("pin_host_versions"):
        out["versions"] = {p: L.host_package_version(p) for p in spec["packages"]}
    if spec.get("mpi_hello"):
        out["hello"] = _file_sha(RECIPE_DIR / MPI_HELLO_SOURCE)
        out["mpi-dev"] = {p: L.host_package_version(p) for p in ("libopenmpi-dev", "libmpich-dev")}
    return out


def layer_keys(specs: list[dict[str, Any]]) -> list[str]:
    keys: list[str] = []
    prev = BUILDER_VERSION
    for spec in specs:
        prev = _sha(_canon([prev, spec, _host_inputs(spec)]))
        keys.append(prev)
    return keys


class _Store:
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


def _ensure_rootfs(store: _Store, specs: list[dict[str, Any]], keys: list[str], i: int) -> Path:
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


def _ensure_layer(
    store: _Store, specs: list[dict[str, Any]], keys: list[str], i: int
) -> L.LayerBlob:
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
        blob = L.write_layer(store.blobs, _entries_fill(spec), f"entries {_canon(spec).decode()}")
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


def _extra_labels(store: _Store, specs: list[dict[str, Any]], keys: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for i, spec in enumerate(specs):
        if spec.get("pin_host_versions"):
            versions = L.installed_versions(store.rootfs / keys[i], spec["packages"])
            for pkg, ver in sorted(versions.items()):
                labels[f"org.hpcbridge.package.{pkg}"] = ver
    return labels


# ---------------------------------------------------------------------------------------
# OCI layout, archives, registry


def _write_layout(
    store: _Store, out: Path, tag: str, blobs: list[L.LayerBlob], config: dict[str, Any]
) -> str:
    sha_dir = out / "blobs" / "sha256"
    sha_dir.mkdir(parents=True)
    for b in blobs:
        dst = sha_dir / b.digest.split(":", 1)[1]
        if not dst.exists():
            try:
                os.link(store.blob_path(b.digest), dst)
            except OSError:
                shutil.copyfile(store.blob_path(b.digest), dst)
    full_config = {
        "created": CREATED,
        "author": "hpcbridge testbed",
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [b.diff_id for b in blobs]},
        "history": [{"created": CREATED, "created_by": b.created_by} for b in blobs],
    }
    config_bytes = _canon(full_config)
    (sha_dir / _sha(config_bytes)).write_bytes(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {
            "mediaType": CONFIG_MEDIA_TYPE,
            "digest": "sha256:" + _sha(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": L.LAYER_MEDIA_TYPE, "digest": b.digest, "size": b.size} for b in blobs
        ],
        "annotations": {"org.opencontainers.image.created": CREATED},
    }
    manifest_bytes = _canon(manifest)
    digest = "sha256:" + _sha(manifest_bytes)
    (sha_dir / _sha(manifest_bytes)).write_bytes(manifest_bytes)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": digest,
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": tag},
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    (out / "index.json").write_bytes(_canon(index))
    (out / "oci-layout").write_bytes(_canon({"imageLayoutVersion": "1.0.0"}))
    return digest


def _skopeo(store: _Store, *args: str) -> None:
    policy = store.root / "policy.json"
    if not policy.exists():
        policy.write_text(POLICY)
    L.run_logged(
        ["skopeo", "--policy", str(policy), "copy", "--quiet", *args], store.logs / "skopeo.log"
    )


def _build_image(store: _Store, name: str, out: Path, ref: str) -> dict[str, Any]:
    recipe = RECIPES[name]
    specs = layer_specs(name)
    keys = layer_keys(specs)
    blobs = [_ensure_layer(store, specs, keys, i) for i in range(len(specs))]
    config = json.loads(json.dumps(recipe["config"]))
    config.setdefault("Labels", {}).update(_extra_labels(store, specs, keys))
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    oci_dir = tmp / "oci"
    digest = _write_layout(store, oci_dir, recipe["tag"], blobs, config)
    tmp_src = f"oci:{oci_dir}:{recipe['tag']}"
    _skopeo(store, tmp_src, f"docker-archive:{tmp / 'image.docker.tar'}:{ref}")
    _skopeo(store, tmp_src, f"oci-archive:{tmp / 'image.oci.tar'}:{recipe['tag']}")
    meta = {
        "name": name,
        "tag": recipe["tag"],
        "digest": digest,
        "labels": config.get("Labels", {}),
        "config": config,
        "layers": [b.digest for b in blobs],
        "diff_ids": [b.diff_id for b in blobs],
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return meta


def image_key(name: str) -> str:
    recipe = RECIPES[name]
    specs = layer_specs(name)
    return _sha(_canon([layer_keys(specs)[-1], recipe["tag"], recipe["config"]]))[:16]


def _ensure_one(store: _Store, name: str, registry: str) -> dict[str, Any]:
    recipe = RECIPES[name]
    repo = f"{REPO_PREFIX}/{name}"
    ref = f"{registry}/{repo}:{recipe['tag']}"
    out = store.root / f"{name}-{image_key(name)}"
    meta_path = out / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
    else:
        meta = _build_image(store, name, out, ref)
        store.built = True
    if manifest_digest(repo, recipe["tag"], registry) != meta["digest"]:
        _skopeo(
            store,
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{out / 'oci'}:{recipe['tag']}",
            f"docker://{ref}",
        )
        pushed = manifest_digest(repo, recipe["tag"], registry)
        if pushed != meta["digest"]:
            raise RuntimeError(
                f"pushed {ref} but the registry reports {pushed}, not {meta['digest']}"
            )
    return {
        "ref": ref,
        "digest": meta["digest"],
        "tag": recipe["tag"],
        "docker_archive": str(out / "image.docker.tar"),
        "oci_dir": str(out / "oci"),
        "oci_archive": str(out / "image.oci.tar"),
        "labels": dict(meta["labels"]),
        "config": meta["config"],
        "layers": list(meta["layers"]),
        "diff_ids": list(meta["diff_ids"]),
    }


GC_AGE = 3600.0  # seconds: younger leftovers may belong to a session running older recipes


def _stale(path: Path) -> bool:
    """Old enough to delete, or a temporary dir whose builder process is gone."""
    if ".tmp-" in path.name:
        pid = path.name.rsplit(".tmp-", 1)[1]
        return not (pid.isdigit() and Path(f"/proc/{pid}").exists())
    try:
        return time.time() - path.lstat().st_mtime > GC_AGE
    except FileNotFoundError:
        return False


def _collect_garbage(store: _Store) -> None:
    """Drop image dirs, root filesystems, layer records and blobs no current recipe uses
    (once they are an hour old) and leftovers of interrupted builds (called under the lock,
    after a build)."""
    live: set[str] = set()
    images: set[str] = set()
    for name in RECIPES:
        live.update(layer_keys(layer_specs(name)))
        images.add(f"{name}-{image_key(name)}")
    for d in store.rootfs.iterdir():
        if d.name not in live and _stale(d):
            shutil.rmtree(d, ignore_errors=True)
    for d in store.root.iterdir():
        if d.is_dir() and "-" in d.name and d.name not in images and _stale(d):
            shutil.rmtree(d, ignore_errors=True)
    keep_blobs: set[str] = set()
    for meta in store.layers.glob("*.json"):
        if meta.stem in live or not _stale(meta):
            keep_blobs.add(json.loads(meta.read_text())["digest"].split(":")[1])
        else:
            meta.unlink()
    for blob in (store.blobs / "sha256").iterdir():
        if blob.name not in keep_blobs and _stale(blob):
            blob.unlink()


def ensure_images(
    cache_dir: Path,
    state_dir: Path,
    registry: str = "127.0.0.1:5000",
    names: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Build (once) and push (when missing) the testbed images; name -> info dict with
    ref, digest, tag, docker_archive, oci_dir, oci_archive (str paths), labels, config,
    layers (compressed blob digests), diff_ids."""
    store = _Store(Path(cache_dir))
    lock_fd = os.open(store.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        result = {name: _ensure_one(store, name, registry) for name in (names or list(RECIPES))}
        if store.built:
            _collect_garbage(store)
    finally:
        os.close(lock_fd)
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    (Path(state_dir) / "images.json").write_text(
        json.dumps(result, indent=2, sort_keys=True) + "\n"
    )
    return result
