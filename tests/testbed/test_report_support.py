"""Headless Chromium for the HTML report's tests (no tests here).

:func:`open_page` starts Debian's ``chromium`` (scripts/install-deps.sh installs it)
as root in a fresh network namespace (``unshare --net``: no network at all, not
even loopback) with a fresh profile, talks to it over the DevTools protocol on a
pipe (``--remote-debugging-pipe``: fd 3 in, fd 4 out, NUL-terminated JSON), loads
the file, and returns what the page showed: console messages and exceptions,
log entries, every request other than the file itself, the plots that decoded,
and a full-page PNG screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)
WIDTH = 1000

# what the page is asked once loaded: the plots that decoded, the figure ids, the height
PROBE = """JSON.stringify({
  plots: Array.from(document.querySelectorAll('img.plot')).map(
    i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth})),
  figures: Array.from(document.querySelectorAll('figure')).map(f => f.id),
  height: document.documentElement.scrollHeight,
  title: document.title
})"""


@dataclass
class PageVisit:
    """What loading the page showed."""

    errors: list[str] = field(default_factory=list)  # console errors, exceptions, log errors
    requests: list[str] = field(default_factory=list)  # URLs other than the page and data:
    probe: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes = b""


class _Pipe:
    def __init__(self, proc: subprocess.Popen[bytes], send: int, recv: int) -> None:
        self.proc, self.send, self.recv = proc, send, recv
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: Optional[str] = None, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        os.write(self.send, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self.read(60.0)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.recv], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self.recv, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium went away (exit {self.proc.poll()})")
            self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        data: dict[str, Any] = json.loads(raw)
        return data


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        p = e.get("params", {})
        if e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append(f"console.{p['type']}: {p.get('args')}")
        elif e.get("method") == "Runtime.exceptionThrown":
            out.append(f"exception: {p.get('exceptionDetails')}")
        elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return out


def open_page(page: Path) -> PageVisit:
    """Load ``page`` in headless Chromium without network; see the module docstring."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("chromium is not installed (scripts/install-deps.sh installs it)")
    url = page.resolve().as_uri()
    profile = tempfile.mkdtemp(prefix="hpcb-chromium-")
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()

    def fds() -> None:  # in the child: the pipe ends as fd 3 and 4, inheritable
        read_end, write_end = os.dup(to_child), os.dup(from_child)
        os.dup2(read_end, 3)
        os.dup2(write_end, 4)

    argv = ["unshare", "--net", chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"]
    proc = subprocess.Popen(
        argv,
        preexec_fn=fds,
        close_fds=False,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(to_child)
    os.close(from_child)
    pipe = _Pipe(proc, from_parent, to_parent)
    try:
        return _visit(pipe, url)
    finally:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            pipe.call("Browser.close")
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(from_parent)
        os.close(to_parent)
        shutil.rmtree(profile, ignore_errors=True)


def _visit(pipe: _Pipe, url: str) -> PageVisit:
    target = pipe.call("Target.createTarget", url="about:blank")["targetId"]
    sid = pipe.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    for domain in ("Runtime", "Log", "Page", "Network"):
        pipe.call(f"{domain}.enable", sid)
    pipe.call("Emulation.setDeviceMetricsOverride", sid, width=WIDTH, height=900,
              deviceScaleFactor=1, mobile=False)  # fmt: skip
    pipe.events.clear()
    nav = pipe.call("Page.navigate", sid, url=url)
    if nav.get("errorText"):
        raise RuntimeError(f"chromium could not open {url}: {nav['errorText']}")
    ready = "document.readyState === 'complete' && location.href"
    deadline = time.monotonic() + 60.0
    while pipe.call("Runtime.evaluate", sid, expression=ready)["result"].get("value") != url:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not finish loading")
        time.sleep(0.1)
    answer = pipe.call("Runtime.evaluate", sid, expression=PROBE, returnByValue=True)
    probe: dict[str, Any] = json.loads(answer["result"]["value"])
    height = int(probe["height"])
    pipe.call("Emulation.setDeviceMetricsOverride", sid, width=WIDTH, height=height,
              deviceScaleFactor=1, mobile=False)  # fmt: skip
    shot = pipe.call("Page.captureScreenshot", sid, format="png", captureBeyondViewport=True)
    requests = [
        e["params"]["request"]["url"]
        for e in pipe.events
        if e.get("method") == "Network.requestWillBeSent"
        and e["params"]["request"]["url"] != url
        and not e["params"]["request"]["url"].startswith("data:")
    ]
    return PageVisit(_errors(pipe.events), requests, probe, base64.b64decode(shot["data"]))


ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def keep_artifact(name: str, data: bytes) -> Path:
    """Write a test artifact under tests/artifacts/ (git-ignored) and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(data)
    return path
