"""An offline wheelhouse: hpcbridge's wheel and its dependencies, for ``pip install --no-index``.

The dependencies are repacked from the distributions installed in the repo's
venv (the files their RECORD lists, a fresh RECORD with sha256 hashes, the
wheel tag from their WHEEL file), so a fresh venv can ``pip install`` the
hpcbridge wheel with no network at all -- as a user would from PyPI, minus
the download.  hpcbridge's own wheel is built from the checkout.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

#: Files of an installed distribution that are not part of its wheel.
_INSTALL_ONLY = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def build_wheel(repo: Path, dest: Path) -> Path:
    """``pip wheel`` of the checkout (no dependencies, no build isolation: offline)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(dest), str(repo)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (whl,) = dest.glob("hpcbridge-*.whl")
    return whl


def requirements(wheel: Path) -> list[str]:
    """The distribution names the wheel requires on this interpreter (markers applied)."""
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        text = zf.read(meta).decode()
    reqs = [
        ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("Requires-Dist:")
    ]
    return [_name(r) for r in reqs if _applies(r)]


def _name(requirement: str) -> str:
    return re.split(r"[ <>=!~\[(;]", requirement.strip(), maxsplit=1)[0]


def repack(dist: metadata.Distribution, dest: Path) -> Path:
    """A wheel of an installed distribution (pure-Python or binary)."""
    site = Path(str(dist.locate_file("")))
    tags = [ln.split(":", 1)[1].strip() for ln in (dist.read_text("WHEEL") or "").splitlines()
            if ln.startswith("Tag:")]  # fmt: skip
    name, version = _norm(dist.metadata["Name"]), dist.version
    path = dest / f"{name}-{version}-{tags[0]}.whl"
    record: list[str] = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in dist.files or []:
            rel = str(f)
            parts = Path(rel).parts
            if rel.startswith("..") or "__pycache__" in parts or rel.endswith(".pyc"):
                continue
            if parts[0].endswith(".dist-info") and parts[-1] in _INSTALL_ONLY:
                continue
            data = (site / rel).read_bytes()
            zf.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{rel},sha256={digest.decode()},{len(data)}")
        info = f"{name}-{version}.dist-info"
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def wheelhouse(repo: Path, site_packages: Path, dest: Path) -> Path:
    """Build hpcbridge's wheel and repack its dependency closure into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    whl = build_wheel(repo, dest)
    installed = {
        _norm(d.metadata["Name"]): d for d in metadata.distributions(path=[str(site_packages)])
    }
    todo, seen = requirements(whl), set()
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = installed[name]
        repack(dist, dest)
        todo += [_name(r) for r in dist.requires or [] if _applies(r)]
    return whl


def _applies(requirement: str) -> bool:
    """Needed here: no marker, or one true on this interpreter (extras are never asked for)."""
    from packaging.markers import Marker

    _, _, marker = requirement.partition(";")
    return not marker.strip() or Marker(marker.strip()).evaluate({"extra": ""})
