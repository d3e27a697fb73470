#!/usr/bin/env python3
"""bench/bigimage: a generated large image (about 2.3 GB unpacked) for the conversion benchmark.

Built by this script, deterministically (the same parameters give the same
blobs, digests and SIFs), without Docker, as an OCI layout directory, then
pushed to the testbed's registry with skopeo (blobs unchanged):

* ``base``: directories, symlinks (absolute and relative), a hard link, text files and
  ``/bin/hello`` (a static x86_64 program, so that ``apptainer exec`` can be timed);
* ``random-K`` (K = 0..3): two files of 256 MiB of incompressible bytes each
  (SHAKE-128 of a seed): 2 GiB in all;
* ``files-K`` (K = 0..1): 20,000 small files each (64 B .. 16 KiB, half text, half
  random) in 200 directories, a few hard links;
* ``top``: whiteouts of lower files and directories and an opaque directory.

Layers are gzip level 1 (ISA-L when installed, else zlib), tar GNU format,
fixed mtime, owner 0.  ``python bench/bigimage.py [--push]`` prints the layout
and, with ``--push``, the registry reference.  Used by bench/convert.py and the
testbed tests of issue 15 (tests/testbed/test_convert_memory.py).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

REPO = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("HPCBRIDGE_BENCH_DIR", "/var/tmp/hpcbridge-bench"))
MTIME = 1704067200
CREATED = "2024-01-01T00:00:00Z"
REGISTRY = "127.0.0.1:5000"
REPOSITORY = "hpcb/bench-large"
LAYER_MT = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_MT = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MT = "application/vnd.oci.image.config.v1+json"
MiB = 1 << 20


@dataclass(frozen=True)
class Params:
    version: int = 2  # of this recipe
    random_layers: int = 4
    random_files: int = 2  # per random layer
    random_file_mib: int = 256
    small_layers: int = 2
    small_files: int = 20_000  # per small-file layer

    @property
    def tag(self) -> str:
        key = json.dumps(self.__dict__, sort_keys=True).encode()
        return "v1-" + hashlib.sha256(key).hexdigest()[:12]

    @property
    def unpacked_bytes(self) -> int:
        return self.random_layers * self.random_files * self.random_file_mib * MiB


def _compressor() -> Any:
    try:
        from isal import isal_zlib

        return isal_zlib.compressobj(1, isal_zlib.DEFLATED, 31)
    except ImportError:
        return zlib.compressobj(1, zlib.DEFLATED, 31)


class _LayerWriter(io.RawIOBase):
    """tar bytes in; hashes them (diff_id), gzips them into ``out`` and hashes that (digest)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.diff = hashlib.sha256()
        self.blob = hashlib.sha256()
        self.size = 0
        self.comp = _compressor()

    def writable(self) -> bool:
        return True

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob.update(data)
            self.out.write(data)
            self.size += len(data)

    def write(self, data: Any) -> int:
        view = bytes(data)
        self.diff.update(view)
        self._emit(self.comp.compress(view))
        return len(view)

    def finish(self) -> None:
        self._emit(self.comp.flush())


def _stream(seed: str, size: int) -> Iterator[bytes]:
    """``size`` incompressible bytes, 16 MiB at a time (SHAKE-128 of seed + block number)."""
    block = 16 * MiB
    for i in range(0, size, block):
        n = min(block, size - i)
        yield hashlib.shake_128(f"{seed}/{i // block}".encode()).digest(n)


class _Reader:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""
        self._pos = 0

    def read(self, n: int) -> bytes:
        parts = []
        while n > 0:
            if self._pos >= len(self._buf):
                self._buf, self._pos = next(self._chunks, b""), 0
                if not self._buf:
                    break
            part = self._buf[self._pos : self._pos + n]
            self._pos += len(part)
            n -= len(part)
            parts.append(part)
        return b"".join(parts)


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, mode: int = 0o644) -> Any:
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.mtime = kind, size, mode, MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def _dir(tf: tarfile.TarFile, name: str) -> None:
    tf.addfile(_info(name, tarfile.DIRTYPE, mode=0o755))


def _file(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    tf.addfile(_info(name, size=len(data), mode=mode), io.BytesIO(data))


def _link(tf: tarfile.TarFile, name: str, target: str, hard: bool = False) -> None:
    ti = _info(name, tarfile.LNKTYPE if hard else tarfile.SYMTYPE, mode=0o777)
    ti.linkname = target
    tf.addfile(ti)


def _base(tf: tarfile.TarFile, p: Params) -> None:
    from hpcbridge.images.sif.elf import executable  # a static program: `apptainer exec` needs one

    for d in ("bin", "etc", "opt", "opt/data", "tmp", "usr", "usr/lib", "var", "var/lib"):
        _dir(tf, d)
    _file(tf, "bin/hello", executable("x86_64", b"hello from bench-large\n") or b"", 0o755)
    _file(tf, "etc/os-release", b'NAME="hpcbridge bench"\nID=bench\n')
    _file(tf, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    _link(tf, "lib", "usr/lib")
    _link(tf, "opt/latest", "/opt/data")
    _file(tf, "usr/lib/libbench.so.1", b"\x7fELF" + bytes(4092), 0o755)
    _link(tf, "usr/lib/libbench.so", "libbench.so.1")
    _link(tf, "usr/lib/libbench-hard.so.1", "usr/lib/libbench.so.1", hard=True)
    for name in ("doomed", "doomed-dir/a", "doomed-dir/b", "keep-opaque/x"):
        if "/" in name:
            _dir(tf, "opt/" + name.split("/")[0])
        _file(tf, f"opt/{name}", f"{name}\n".encode())


def _random(k: int) -> Callable[[tarfile.TarFile, Params], None]:
    def fill(tf: tarfile.TarFile, p: Params) -> None:
        _dir(tf, f"opt/data/r{k}")
        size = p.random_file_mib * MiB
        for j in range(p.random_files):
            name = f"opt/data/r{k}/blob{j}.bin"
            tf.addfile(_info(name, size=size), _Reader(_stream(f"r{k}/{j}", size)))  # type: ignore[arg-type]

    return fill


def _small(k: int) -> Callable[[tarfile.TarFile, Params], None]:
    def fill(tf: tarfile.TarFile, p: Params) -> None:
        root = f"usr/lib/py{k}"
        _dir(tf, root)
        noise = hashlib.shake_128(f"small{k}".encode()).digest(16 * 1024 * 64)
        for i in range(p.small_files):
            d = f"{root}/pkg{i % 200:03d}"
            if i < 200:
                _dir(tf, d)
            size = 64 + (i * 7919) % (16 * 1024 - 64)
            if i % 2:
                off = (i * 4099) % (len(noise) - size)
                data = noise[off : off + size]
            else:
                line = f"def f{i}(x):\n    return x * {i} + {k}  # module {i}\n".encode()
                data = (line * (size // len(line) + 1))[:size]
            _file(tf, f"{d}/m{i:05d}.py", data)
            if i % 1000 == 999:
                _link(tf, f"{d}/m{i:05d}-link.py", f"{d}/m{i:05d}.py", hard=True)

    return fill


def _top(tf: tarfile.TarFile, p: Params) -> None:
    _dir(tf, "opt")
    _file(tf, "opt/.wh.doomed", b"")
    _file(tf, "opt/.wh.doomed-dir", b"")
    _dir(tf, "opt/keep-opaque")
    _file(tf, "opt/keep-opaque/.wh..wh..opq", b"")
    _file(tf, "opt/keep-opaque/y", b"new\n")
    _file(tf, "etc/bench-built", b"by bench/bigimage.py\n")


def layer_plan(p: Params) -> list[tuple[str, Callable[[tarfile.TarFile, Params], None]]]:
    plan: list[tuple[str, Callable[[tarfile.TarFile, Params], None]]] = [("base", _base)]
    plan += [(f"random-{k}", _random(k)) for k in range(p.random_layers)]
    plan += [(f"files-{k}", _small(k)) for k in range(p.small_layers)]
    plan.append(("top", _top))
    return plan


def _write_layer(
    blobs: Path, fill: Callable[[tarfile.TarFile, Params], None], p: Params
) -> dict[str, Any]:
    tmp = blobs / f".layer-{os.getpid()}.tmp"
    with open(tmp, "wb") as out:
        w = _LayerWriter(out)
        with tarfile.open(fileobj=w, mode="w|", format=tarfile.GNU_FORMAT) as tf:  # type: ignore[call-overload]
            tf.copybufsize = MiB
            fill(tf, p)
        w.finish()
    digest = w.blob.hexdigest()
    os.replace(tmp, blobs / digest)
    return {"digest": "sha256:" + digest, "diff_id": "sha256:" + w.diff.hexdigest(), "size": w.size}


def _canon(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build_layout(p: Params, dest: Path) -> str:
    """Write the OCI layout (once per parameter set); return the manifest digest."""
    done = dest / "index.json"
    if done.is_file():
        return str(json.loads(done.read_text())["manifests"][0]["digest"])
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    blobs = tmp / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layers = []
    for name, fill in layer_plan(p):
        layers.append(_write_layer(blobs, fill, p))
        print(f"bigimage: layer {name}: {layers[-1]['size'] / MiB:.0f} MiB", flush=True)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
            "Labels": {"org.hpcbridge.bench": p.tag},
            "WorkingDir": "/opt",
        },
        "rootfs": {"type": "layers", "diff_ids": [entry["diff_id"] for entry in layers]},
        "history": [{"created": CREATED, "created_by": name} for name, _ in layer_plan(p)],
    }
    cbytes = _canon(config)
    (blobs / hashlib.sha256(cbytes).hexdigest()).write_bytes(cbytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MT,
        "config": {
            "mediaType": CONFIG_MT,
            "digest": "sha256:" + hashlib.sha256(cbytes).hexdigest(),
            "size": len(cbytes),
        },
        "layers": [
            {"mediaType": LAYER_MT, "digest": entry["digest"], "size": entry["size"]}
            for entry in layers
        ],
    }
    mbytes = _canon(manifest)
    digest = "sha256:" + hashlib.sha256(mbytes).hexdigest()
    (blobs / digest[7:]).write_bytes(mbytes)
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MANIFEST_MT,
                "digest": digest,
                "size": len(mbytes),
                "annotations": {"org.opencontainers.image.ref.name": p.tag},
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    (tmp / "oci-layout").write_bytes(_canon({"imageLayoutVersion": "1.0.0"}))
    (tmp / "index.json").write_bytes(_canon(index))
    for path in [tmp, *tmp.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return digest


def push(layout: Path, p: Params, registry: str = REGISTRY) -> str:
    """Copy the layout to ``registry`` unless the tag already names its digest; the ref."""
    from tests.testbed.registry import manifest_digest

    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    ref = f"{registry}/{REPOSITORY}:{p.tag}"
    if manifest_digest(REPOSITORY, p.tag, registry) != digest:
        policy = layout.parent / "policy.json"
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        argv = ["skopeo", "--policy", str(policy), "copy", "--quiet"]
        argv += ["--dest-tls-verify=false", f"oci:{layout}:{p.tag}", f"docker://{ref}"]
        subprocess.run(argv, check=True)
    return ref


def ensure(p: Params = Params(), registry: bool = True) -> tuple[Path, str, str]:
    """(layout dir, manifest digest, registry ref or "") of the image, built/pushed once."""
    WORK.mkdir(parents=True, exist_ok=True)
    os.chmod(WORK, 0o755)
    layout = WORK / f"bigimage-{p.tag}"
    digest = build_layout(p, layout)
    ref = push(layout, p) if registry else ""
    return layout, digest, ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--push", action="store_true", help="push to the testbed registry")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    layout, digest, ref = ensure(registry=args.push)
    print(f"layout {layout}\ndigest {digest}" + (f"\nref {ref}" if ref else ""))


if __name__ == "__main__":
    main()
