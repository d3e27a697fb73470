"""Layered loading of the site configuration, each value with its source.

Layers, lowest first: packaged ``defaults.toml`` < site file
(``$HPCBRIDGE_SITE_CONFIG`` or ``/etc/hpcbridge/site.toml``) < user file
(``$XDG_CONFIG_HOME/hpcbridge/config.toml``) < project ``hpcbridge.toml`` in the
working directory < ``HPCBRIDGE_<SECTION>_<KEY>`` variables < CLI overrides.

A project ``hpcbridge.toml`` that is a job file (it has ``image = ...``) is not a
configuration: it is skipped with a warning (``config show`` prints it), so a job
file of that name still renders and submits.

Site policy that later layers cannot weaken: ``polling.min_interval`` of the
site layer is a floor (lower values are raised to it, with a warning);
``binds.deny`` of later layers is added to the site's list, never replaces it;
``binds.allow`` may be set only by the site file.

File access is limited to :func:`read_layer_file` and the ``importlib.resources``
read of the defaults; everything else is pure.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from hpcbridge import _toml
from hpcbridge.config.layers import SITE_LEVEL, Layer, build_config
from hpcbridge.config.schema import (
    FIELDS,
    PARTITION_FIELDS,
    SECTIONS,
    Config,
    unknown_key_error,
)
from hpcbridge.config.values import convert_value
from hpcbridge.errors import ConfigError
from hpcbridge.fsutil import xdg_dir
from hpcbridge.job.values import unknown_hint

SITE_FILE = Path("/etc/hpcbridge/site.toml")
PROJECT_FILE = "hpcbridge.toml"
ENV_PREFIX = "HPCBRIDGE_"


# ----------------------------------------------------------------------- parse


def parse_document(
    doc: Mapping[str, Any], label: str, base_dir: str, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Check a parsed TOML document against the schema; convert every value.

    Returns ``{dotted key: typed value}``.  Unknown keys are ConfigErrors naming
    ``label`` (the file), the key, the closest valid key and all valid keys.
    """
    out: dict[str, Any] = {}
    for section, table in doc.items():
        if section not in SECTIONS:
            raise unknown_key_error(section, SECTIONS, label)
        if not isinstance(table, dict):
            raise ConfigError(
                f"{label}: {section} = {table!r} is not a table",
                f"write [{section}] and keys below",
            )
        if section == "partitions":
            out.update(_parse_partitions(table, label, base_dir, environ))
            continue
        for key, value in table.items():
            dotted = f"{section}.{key}"
            if key not in FIELDS[section]:
                raise ConfigError(
                    f"{label}: unknown key {dotted!r}",
                    unknown_hint(key, FIELDS[section], f"valid keys in [{section}]"),
                )
            out[dotted] = convert_value(
                FIELDS[section][key], value, dotted, label, base_dir, environ, text=False
            )
    return out


def _parse_partitions(
    table: Mapping[str, Any], label: str, base_dir: str, environ: Mapping[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, ptable in table.items():
        if not name or not all(c.isalnum() or c in "_-." for c in name):
            raise ConfigError(
                f"{label}: partition name {name!r} is not a Slurm partition name",
                "use letters, digits, _ - .",
            )
        if not isinstance(ptable, dict):
            raise ConfigError(
                f"{label}: partitions.{name} = {ptable!r} is not a table",
                f"write [partitions.{name}] and keys below",
            )
        out[f"partitions.{name}"] = True  # the partition exists even with no keys
        for key, value in ptable.items():
            dotted = f"partitions.{name}.{key}"
            if key not in PARTITION_FIELDS:
                raise ConfigError(
                    f"{label}: unknown key {dotted!r}",
                    unknown_hint(key, PARTITION_FIELDS, "valid partition keys"),
                )
            out[dotted] = convert_value(
                PARTITION_FIELDS[key], value, dotted, label, base_dir, environ, text=False
            )
    return out


def read_layer_file(path: Path, label: str) -> dict[str, Any]:
    """Read one TOML file (the only file access of the loader besides the defaults)."""
    try:
        return _toml.load_bytes(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{label}: file does not exist", "check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{label}: is a directory", "give a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{label}: permission denied", "make the file readable") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{label}: not UTF-8 text", "save it as UTF-8") from None
    except _toml.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}", "fix the syntax") from None


def _is_file(path: Path) -> bool:
    """``path.is_file()``, but an unreadable parent is a clear ConfigError, not a traceback."""
    try:
        return path.is_file()
    except PermissionError:
        raise ConfigError(
            f"{path}: permission denied while looking for a configuration file",
            "make its directory readable, or point HOME/XDG_CONFIG_HOME at a directory you own",
        ) from None


def read_defaults() -> dict[str, Any]:
    here = Path(__file__).with_name("defaults.toml")
    if here.is_file():  # installed as files: importlib.resources would cost ~5 ms per command
        return _toml.loads(here.read_text("utf-8"))
    from importlib import resources

    text = resources.files("hpcbridge.config").joinpath("defaults.toml").read_text("utf-8")
    return _toml.loads(text)


def env_layer(environ: Mapping[str, str], cwd: str) -> Layer:
    """``HPCBRIDGE_<SECTION>_<KEY>`` variables (non-empty) as a layer."""
    values: dict[str, Any] = {}
    labels: dict[str, str] = {}
    sections = sorted(FIELDS, key=len, reverse=True)
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or environ[name] == "":
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section = next((s for s in sections if rest.startswith(s + "_")), None)
        if section is None:
            continue  # e.g. HPCBRIDGE_SITE_CONFIG, HPCBRIDGE_TESTBED_DIR: not config keys
        key = rest[len(section) + 1 :]
        if key not in FIELDS[section]:
            valid = [f"{ENV_PREFIX}{section.upper()}_{k.upper()}" for k in FIELDS[section]]
            raise ConfigError(
                f"environment variable {name}: unknown key {section}.{key}",
                unknown_hint(name, valid, "valid variables"),
            )
        dotted = f"{section}.{key}"
        values[dotted] = convert_value(
            FIELDS[section][key], environ[name], dotted, name, cwd, environ, text=True
        )
        labels[dotted] = name
    return Layer("environment", SITE_LEVEL + 3, values, labels)


def cli_layer(
    overrides: Mapping[str, object],
    labels: Mapping[str, str],
    cwd: str,
    environ: Mapping[str, str],
) -> Layer:
    values: dict[str, Any] = {}
    out_labels: dict[str, str] = {}
    for dotted, value in overrides.items():
        if value is None:
            continue
        label = labels.get(dotted) or "--" + dotted.replace(".", "-").replace("_", "-")
        kind = kind_of(dotted, label)
        values[dotted] = convert_value(
            kind, value, dotted, label, cwd, environ, text=isinstance(value, str)
        )
        out_labels[dotted] = label
    return Layer("command line", SITE_LEVEL + 4, values, out_labels)


def kind_of(dotted: str, label: str) -> str:
    """The kind of a dotted key (``section.key`` or ``partitions.NAME.key``)."""
    parts = dotted.split(".")
    if parts[0] == "partitions" and len(parts) == 3:
        if parts[2] in PARTITION_FIELDS:
            return PARTITION_FIELDS[parts[2]]
        raise ConfigError(
            f"{label}: unknown key {dotted!r}", unknown_hint(parts[2], PARTITION_FIELDS)
        )
    if len(parts) == 2 and parts[0] in FIELDS and parts[1] in FIELDS[parts[0]]:
        return FIELDS[parts[0]][parts[1]]
    valid = [f"{s}.{k}" for s, keys in FIELDS.items() for k in keys]
    raise unknown_key_error(dotted, [*valid, "partitions.NAME.KEY"], label)


# ----------------------------------------------------------------------- load


def _with_user(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` with USER set (from the password database if missing),
    so site files can say ``/scratch/$USER/...`` under cron or a bare container."""
    env = dict(environ)
    if not env.get("USER"):
        import contextlib
        import getpass

        with contextlib.suppress(KeyError, OSError):  # a uid without a passwd entry
            env["USER"] = env.get("LOGNAME") or getpass.getuser()
    return env


def load_config(
    cli_overrides: Mapping[str, object] = {},
    *,
    cwd: Optional[Path] = None,
    environ: Optional[Mapping[str, str]] = None,
    cli_labels: Optional[Mapping[str, str]] = None,
) -> Config:
    """Load every layer and resolve the configuration (see the module docstring).

    ``cli_overrides`` maps dotted keys (``"cache.dir"``, ``"partitions.gpu.max_time"``)
    to values (typed, or text converted like environment values); ``cli_labels``
    optionally names the flag each came from (default ``--cache-dir``).
    """
    env = _with_user(os.environ if environ is None else environ)
    here = str(cwd if cwd is not None else Path.cwd())
    layers = [Layer("default", 0, parse_document(read_defaults(), "default", here, env), {})]
    files: list[str] = []
    site_env = env.get("HPCBRIDGE_SITE_CONFIG")
    if site_env:
        site = Path(here) / site_env  # an absolute value stays as it is
        if not site.exists() or site.is_dir():  # /dev/null: no site file
            raise ConfigError(
                f"HPCBRIDGE_SITE_CONFIG={site_env} does not exist or is not a file",
                "point it at the site TOML file or unset it",
            )
        site_label = site_env
    else:
        site, site_label = SITE_FILE, str(SITE_FILE)
    candidates = [
        (site, site_label, SITE_LEVEL),
        (xdg_dir("config", env) / "config.toml", None, SITE_LEVEL + 1),
        (Path(here) / PROJECT_FILE, None, SITE_LEVEL + 2),
    ]
    warnings: list[str] = []
    for path, label, level in candidates:
        if not _is_file(path):
            continue
        name = label or str(path)
        doc = read_layer_file(path, name)
        if level == SITE_LEVEL + 2 and is_job_file(doc):
            warnings.append(
                f"{name} is a job file (it has image = ...), not a project configuration: "
                "it is not read as configuration; rename it (e.g. job.toml) to silence this"
            )
            continue
        values = parse_document(doc, name, str(path.parent.absolute()), env)
        if level > SITE_LEVEL and "binds.allow" in values:
            raise ConfigError(
                f"{name}: binds.allow can only be set in the site file",
                "ask the site admins, or remove it",
            )
        layers.append(Layer(name, level, values, {}))
        files.append(name)
    layers.append(env_layer(env, here))
    layers.append(cli_layer(cli_overrides, cli_labels or {}, here, env))
    for layer in layers[-2:]:
        if "binds.allow" in layer.values:
            key_label = layer.labels["binds.allow"]
            raise ConfigError(f"{key_label}: binds.allow can only be set in the site file")
    cfg = build_config(layers, files, env)
    return dataclasses.replace(cfg, warnings=(*warnings, *cfg.warnings)) if warnings else cfg


def is_job_file(doc: Mapping[str, Any]) -> bool:
    """Whether a parsed ``hpcbridge.toml`` is a job file: it names an ``image`` at the top
    (a configuration file holds only ``[section]`` tables)."""
    return isinstance(doc.get("image"), str)


# ----------------------------------------------------------------------- check


def check_file(path: Path, environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """Every problem of a site file, one line each (empty when it is valid).

    Each key is checked on its own so one typo does not hide the next; the
    cross-key checks run once every key is valid.
    """
    env = _with_user(os.environ if environ is None else environ)
    label = str(path)
    try:
        doc = read_layer_file(path, label)
    except ConfigError as exc:
        return [str(exc)]
    base = str(path.parent.absolute())
    problems: list[str] = []
    for section, table in doc.items():
        items = (
            table.items()
            if isinstance(table, dict) and table and section != "partitions"
            else [None]
        )
        for item in items:
            sub = {section: dict([item])} if item is not None else {section: table}
            if section == "partitions" and isinstance(table, dict):
                for name, ptable in table.items():
                    if isinstance(ptable, dict) and ptable:
                        for key, value in ptable.items():
                            _collect(problems, {section: {name: {key: value}}}, label, base, env)
                    else:
                        _collect(problems, {section: {name: ptable}}, label, base, env)
                continue
            _collect(problems, sub, label, base, env)
    if problems:
        return problems
    try:
        values = parse_document(doc, label, base, env)
        defaults = parse_document(read_defaults(), "default", base, env)
        build_config(
            [Layer("default", 0, defaults, {}), Layer(label, SITE_LEVEL, values, {})], [label], env
        )
    except ConfigError as exc:
        return [str(exc)]
    return []


def _collect(
    problems: list[str], doc: Mapping[str, Any], label: str, base: str, env: Mapping[str, str]
) -> None:
    try:
        parse_document(doc, label, base, env)
    except ConfigError as exc:
        problems.append(str(exc))
