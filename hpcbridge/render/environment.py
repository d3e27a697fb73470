"""The Jinja2 environment: template search path, StrictUndefined, two filters.

``shquote`` prints a value as shell words, ``comment`` keeps a value on its ``#``
comment line (see :mod:`hpcbridge.render.context` for which values take which).

Templates are looked up in the site template directory first (``templates.dir``
in the site config), then in the templates shipped with hpcbridge: the wheel
installs them as ``hpcbridge/templates``; in a source checkout they are the
repository's top-level ``templates/``.  Reading templates is the only I/O of
rendering.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from hpcbridge.config.schema import Config
from hpcbridge.errors import ConfigError
from hpcbridge.render.context import TemplateContext, template_variables
from hpcbridge.render.words import comment_text, shquote

if TYPE_CHECKING:
    import jinja2


def site_template_dir(cfg: Config) -> Optional[str]:
    """The site's template override directory (``templates.dir``), if any."""
    return str(cfg.templates.dir) if cfg.templates.dir else None


def builtin_template_dir() -> Path:
    """``hpcbridge/templates`` when installed from a wheel, else the repo's ``templates/``."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "templates"
    if installed.is_dir():
        return installed
    return package.parent / "templates"


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
    env.filters["comment"] = comment_text
    return env


def render_template(
    name: str,
    context: Union[TemplateContext, Mapping[str, object]],
    site_dir: Optional[str] = None,
) -> str:
    """Render template ``name`` with the attributes of ``context`` as its variables."""
    import jinja2

    variables = context if isinstance(context, Mapping) else template_variables(context)
    try:
        template = environment(site_dir).get_template(name)
        return template.render(**variables)
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(
            f"template {exc.name!r} not found (searched: {site_dir or '-'}, "
            f"{builtin_template_dir()})",
            "check templates.dir in the site config",
        ) from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(
            f"template {name!r}: {exc.message}",
            "a site template uses a variable hpcbridge does not provide; "
            "see the template contract in docs/site-admin.md",
        ) from None
