"""The example site configurations shipped with hpcbridge (``hpcbridge config example``).

The wheel installs them as ``hpcbridge/site-configs/*.toml``; in a source
checkout they are the repository's top-level ``site-configs/``.  A user whose
cluster has no site file yet copies one, edits it and points
``HPCBRIDGE_SITE_CONFIG`` at it; admins install one as ``/etc/hpcbridge/site.toml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hpcbridge.errors import InputError
from hpcbridge.fsutil import atomic_write_text


@dataclass(frozen=True)
class SiteExample:
    name: str  # the file name without .toml
    path: Path
    title: str  # what the file's first comment line says it is for

    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")


def examples_dir() -> Path:
    """``hpcbridge/site-configs`` when installed from a wheel, else the repo's ``site-configs``."""
    package = Path(__file__).resolve().parent
    installed = package / "site-configs"
    return installed if installed.is_dir() else package.parent / "site-configs"


def examples() -> tuple[SiteExample, ...]:
    out = []
    for path in sorted(examples_dir().glob("*.toml"), key=lambda p: p.stem):
        first = (path.read_text(encoding="utf-8").splitlines() or [""])[0].lstrip("# ")
        title = re.sub(r"^hpcbridge site configuration(: | of )?", "", first)
        out.append(SiteExample(path.stem, path, title))
    return tuple(out)


def example(name: str) -> SiteExample:
    found = {e.name: e for e in examples()}
    key = name.removesuffix(".toml")
    if key not in found:
        raise InputError(
            f"no example site configuration {name!r}",
            f"choose one of: {', '.join(sorted(found)) or 'none installed'}",
        )
    return found[key]


def copy_example(name: str, dest: Path) -> Path:
    """Write example ``name`` to ``dest`` (a new file; an existing one is refused)."""
    chosen = example(name)
    if dest.exists():
        raise InputError(f"{dest} already exists", "choose another file, or remove it first")
    try:
        atomic_write_text(dest, chosen.text())
    except OSError as exc:
        raise InputError(
            f"cannot write {dest}: {exc.strerror}", "give a file in an existing, writable directory"
        ) from None
    return dest
