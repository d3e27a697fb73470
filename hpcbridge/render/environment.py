"""The Jinja2 environment: template search path, StrictUndefined, ``shquote``.

Templates are looked up in the site template directory first (``templates.dir``
in the site config), then in the templates shipped with hpcbridge: the wheel
installs them as ``hpcbridge/templates``; in a source checkout they are the
repository's top-level ``templates/``.  Reading templates is the only I/O of
rendering.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from hpcbridge.errors import ConfigError
from hpcbridge.render.words import shquote

if TYPE_CHECKING:
    import jinja2


def builtin_template_dir() -> Path:
    """``hpcbridge/templates`` when installed from a wheel, else the repo's ``templates/``."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "templates"
    if installed.is_dir():
        return installed
    return package.parent / "templates"


def _sbatch_value(value: object) -> str:
    """An ``#SBATCH`` option value: sbatch reads it without a shell, so no quoting,
    but a line break would end the directive (callers validate; this is a guard)."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"line break in an #SBATCH value: {text!r}")
    return text


@functools.lru_cache(maxsize=8)
def environment(site_dir: Optional[str] = None) -> jinja2.Environment:
    import jinja2

    dirs: list[str] = []
    if site_dir:
        if not Path(site_dir).is_dir():
            raise ConfigError(
                f"templates.dir = {site_dir!r} is not a directory",
                "create it or remove templates.dir from the site config",
            )
        dirs.append(site_dir)
    dirs.append(str(builtin_template_dir()))
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["shquote"] = shquote
    env.filters["sbatch"] = _sbatch_value
    return env


def render_template(name: str, context: dict[str, object], site_dir: Optional[str] = None) -> str:
    import jinja2

    try:
        template = environment(site_dir).get_template(name)
        return template.render(**context)
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(
            f"template {exc.name!r} not found (searched: {site_dir or '-'}, "
            f"{builtin_template_dir()})",
            "check templates.dir in the site config",
        ) from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(
            f"template {name!r}: {exc.message}",
            "a site template uses a variable hpcbridge does not provide; see docs/jobs.md",
        ) from None
