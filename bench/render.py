#!/usr/bin/env python3
"""bench/render: what ``hpcbridge render`` of an image nobody converted costs, next to ``convert``.

The image is bench/bigimage.py's large one (about 2.3 GB unpacked, pushed to the
testbed registry).  Every request goes through a counting TCP proxy on 127.0.0.1 in
front of the registry, which records the bytes the registry sends and the request
lines; each run gets a fresh, empty cache (``XDG_CACHE_HOME``) and no site file:

1. **render, cold**: ``hpcbridge render job.toml`` of a job naming the image (``--repeat``
   runs, a fresh cache each);
2. **render, warm**: the same again on the cache the cold run left (metadata cached);
3. **render --offline**, nothing cached: the script marked UNRESOLVED;
4. **convert, cold**: ``hpcbridge convert`` of the same reference into a fresh cache
   (``--no-convert`` skips it), for scale.

Results go to ``bench/results/render.json`` and, with ``--docs``, the render block of
docs/benchmarks.md.

    .venv/bin/python bench/render.py [--repeat 5] [--no-convert] [--docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import bigimage  # noqa: E402
from bench.docblock import replace_block  # noqa: E402

HPCBRIDGE = str(REPO / ".venv" / "bin" / "hpcbridge")
UPSTREAM = ("127.0.0.1", 5000)
_REQUEST = re.compile(rb"^(GET|HEAD|POST|PUT) (\S+) HTTP/1\.[01]$")


class CountingProxy:
    """A TCP relay to the registry counting the bytes it sends back and the requests."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.lock = threading.Lock()
        self.down = 0
        self.requests: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.down, self.requests = 0, []

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(UPSTREAM)
        pending = b""
        try:
            while True:
                ready, _, _ = select.select([client, upstream], [], [], 60)
                if not ready:
                    return
                for sock in ready:
                    data = sock.recv(1 << 16)
                    if not data:
                        return
                    if sock is client:
                        pending = self._scan(pending + data)
                        upstream.sendall(data)
                    else:
                        with self.lock:
                            self.down += len(data)
                        client.sendall(data)
        finally:
            client.close()
            upstream.close()

    def _scan(self, data: bytes) -> bytes:
        *lines, rest = data.split(b"\r\n")
        for line in lines:
            m = _REQUEST.match(line)
            if m:
                with self.lock:
                    self.requests.append(f"{m.group(1).decode()} {m.group(2).decode()}")
        return rest[-4096:]


def _run(
    argv: list[str], env: dict[str, str], cwd: Path
) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=3600)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return took, done


def _env(home: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_STATE_HOME": str(home / "state"),
        "LANG": "C.UTF-8",
    }


def _kind(request: str) -> str:
    path = request.split(" ", 1)[1]
    return f"{request.split()[0]} {'manifest' if '/manifests/' in path else 'blob' if '/blobs/' in path else path}"


def measure(ref: str, stored: int, repeat: int, convert: bool, work: Path) -> dict[str, Any]:
    proxy = CountingProxy()
    proxied = ref.replace(f"{UPSTREAM[0]}:{UPSTREAM[1]}", f"127.0.0.1:{proxy.port}", 1)
    job = work / "job.toml"
    job.write_text(
        f'name = "big"\nimage = "docker://{proxied}"\ncommand = ["/bin/hello"]\n'
        '[resources]\ntime = "00:05:00"\n'
    )
    out: dict[str, Any] = {"image": ref, "stored_bytes": stored, "cold": [], "repeat": repeat}
    for i in range(repeat):
        home = work / f"cold-{i}"
        proxy.reset()
        took, done = _run([HPCBRIDGE, "render", str(job)], _env(home), work)
        assert "UNRESOLVED" not in done.stdout
        out["cold"].append({"seconds": took, "bytes": proxy.down, "requests": list(proxy.requests)})
        if i < repeat - 1:
            shutil.rmtree(home)
    proxy.reset()
    took, _ = _run([HPCBRIDGE, "render", str(job)], _env(work / f"cold-{repeat - 1}"), work)
    out["warm"] = {"seconds": took, "bytes": proxy.down, "requests": list(proxy.requests)}
    proxy.reset()
    took, done = _run([HPCBRIDGE, "render", "--offline", str(job)], _env(work / "offline"), work)
    assert "UNRESOLVED" in done.stdout
    out["offline"] = {"seconds": took, "bytes": proxy.down, "requests": list(proxy.requests)}
    if convert:
        proxy.reset()
        took, _ = _run(
            [HPCBRIDGE, "convert", "--quiet", f"docker://{proxied}"], _env(work / "convert"), work
        )
        out["convert"] = {"seconds": took, "bytes": proxy.down, "requests": len(proxy.requests)}
    return out


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def markdown(res: dict[str, Any]) -> str:
    cold = res["cold"]
    secs = statistics.median(r["seconds"] for r in cold)
    kinds = list(dict.fromkeys(_kind(q) for q in cold[0]["requests"]))
    layers = [q for r in cold for q in r["requests"] for d in res["layer_digests"] if d in q]
    small = not layers and all(len(r["requests"]) <= 3 for r in cold)
    met = "met" if small and max(r["bytes"] for r in cold) < 64 * 1024 else "**missed**"
    lines = [
        f"Run of {res['when']}, {res['cpus']} CPUs, Python {res['python']}, load average before "
        f"the run {res['load']}; image `{res['image']}` ({_size(res['stored_bytes'])} of "
        f"compressed layers); render cold: median of {len(cold)} runs, each with an empty cache "
        "(samples in `bench/results/render.json`). Bytes are what the registry sent, counted by a "
        "TCP proxy in front of it.",
        "",
        "| measure | wall time | bytes from the registry | requests |",
        "|---|---|---|---|",
        f"| `render`, image not cached | {secs:.2f} s | {_size(max(r['bytes'] for r in cold))} | "
        f"{', '.join(kinds).replace('GET blob', 'GET config blob')} (no layer) |",
        f"| `render` again (metadata cached) | {res['warm']['seconds']:.2f} s | "
        f"{_size(res['warm']['bytes'])} | {', '.join(_kind(q) for q in res['warm']['requests']) or 'none'} |",
        f"| `render --offline`, nothing cached (UNRESOLVED) | {res['offline']['seconds']:.2f} s | "
        f"{_size(res['offline']['bytes'])} | none |",
    ]
    if "convert" in res:
        c = res["convert"]
        lines.append(
            f"| `convert`, cold | {c['seconds']:.1f} s | {_size(c['bytes'])} | {c['requests']} |"
        )
    lines += [
        "",
        f"Target: `render` of an uncached image asks for the manifest and the config only (a HEAD "
        f"for the tag, then two small GETs), well under 64 KiB: {met}.",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-convert", action="store_true", help="skip the cold convert")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "render.json")
    ap.add_argument("--docs", action="store_true", help="refresh docs/benchmarks.md")
    args = ap.parse_args()
    layout, _digest, ref = bigimage.ensure()
    manifest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    blob = layout / "blobs" / "sha256" / manifest.split(":", 1)[1]
    layers = json.loads(blob.read_text())["layers"]
    stored = sum(d["size"] for d in layers)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="bench-render-", dir="/var/tmp"))
    try:
        res = measure(ref, stored, args.repeat, not args.no_convert, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.update(
        layer_digests=[d["digest"] for d in layers],
        when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        cpus=os.cpu_count(),
        python=platform.python_version(),
        load=load,
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(res, indent=1) + "\n")
    text = markdown(res)
    print(text)
    if args.docs:
        replace_block(REPO / "docs" / "benchmarks.md", "render", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
