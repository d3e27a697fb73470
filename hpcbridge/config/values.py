"""Conversion of configuration values and assembly of the :class:`Config`.

Pure: values arrive already read (TOML values, or text from environment variables
and flags); paths are expanded against the given environment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from hpcbridge import _toml
from hpcbridge.config.schema import (
    FIELDS,
    PARTITION_FIELDS,
    BindsConfig,
    CacheConfig,
    Config,
    ConvertConfig,
    EnvConfig,
    GpuConfig,
    LimitsConfig,
    MpiConfig,
    Partition,
    PollingConfig,
    RuntimeConfig,
    SchedulerConfig,
    StateConfig,
    TemplatesConfig,
)
from hpcbridge.errors import ConfigError, JobSpecError
from hpcbridge.images.sif.compression import LEVELS, with_levels
from hpcbridge.job.values import unknown_hint
from hpcbridge.slurm_syntax import parse_mem, parse_time

if TYPE_CHECKING:
    from hpcbridge.config.loader import Layer

#: Level of the defaults and the site file; user, project, env and CLI are above it.
SITE_LEVEL = 1

_ENV_NAME_OR_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\*?")
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _bad(label: str, dotted: str, value: Any, what: str, fix: str) -> ConfigError:
    return ConfigError(f"{label}: {dotted} = {value!r} {what}", fix)


def convert_value(
    kind: str,
    value: Any,
    dotted: str,
    label: str,
    base_dir: str,
    environ: Mapping[str, str],
    *,
    text: bool,
) -> Any:
    """Check and convert one value of ``kind`` (see schema.FIELDS).

    ``text`` is True for environment/flag strings, which are converted to the
    kind (``"true"``, ``"30"``, ``"a,b"``); TOML values must have the right type.
    """
    optional = kind.startswith("opt")
    base = kind[3:] if optional else kind
    if text and isinstance(value, str):
        value = _from_text(base, value, dotted, label)
    if base.startswith("choice:"):
        choices = base.split(":", 1)[1].split("|")
        if value not in choices:
            raise _bad(
                label,
                dotted,
                value,
                "is not valid",
                unknown_hint(str(value), choices, "choose one of"),
            )
        return value
    if base == "str":
        if not isinstance(value, str):
            raise _bad(
                label,
                dotted,
                value,
                "is not a string",
                f'quote it: {dotted.rsplit(".", 1)[-1]} = "{value}"',
            )
        if "\n" in value or "\x00" in value:
            raise _bad(label, dotted, value, "contains a newline", "write it on one line")
        return value
    if base == "bool":
        if not isinstance(value, bool):
            raise _bad(label, dotted, value, "is not true/false", "write true or false (no quotes)")
        return value
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _bad(label, dotted, value, "is not a positive whole number", "write e.g. 4")
        return value
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise _bad(label, dotted, value, "is not a positive number of seconds", "write e.g. 30")
        return float(value)
    if base == "path":
        return _path(value, dotted, label, base_dir, environ)
    if base in ("strlist", "pathlist"):
        items = _str_list(value, dotted, label)
        if base == "pathlist":
            return tuple(_deny_entry(v, dotted, label, environ) for v in items)
        if dotted == "env.allow":
            for item in items:
                if not _ENV_NAME_OR_PREFIX.fullmatch(item):
                    raise _bad(
                        label,
                        dotted,
                        item,
                        "is not a variable name or PREFIX*",
                        "e.g. OMP_* or LANG",
                    )
        return tuple(items)
    if base == "bindlist":
        return _binds(value, dotted, label, base_dir, environ)
    if base == "strmap":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _bad(label, dotted, value, "is not a table of strings", '{ NAME = "value" }')
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise _bad(
                    label, dotted, name, "is not a variable name", "use letters, digits and _"
                )
        return dict(value)
    if base == "time":
        if isinstance(value, str) and value.strip().upper() in ("UNLIMITED", "INFINITE"):
            return None
        return parse_time(value, f"{label}: {dotted}", ConfigError)
    if base == "mem":
        return parse_mem(value, f"{label}: {dotted}", ConfigError)
    raise AssertionError(f"unknown kind {kind}")  # pragma: no cover - schema bug


def _from_text(base: str, raw: str, dotted: str, label: str) -> Any:
    text = raw.strip()
    if base == "bool":
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise _bad(label, dotted, raw, "is not true/false", "use 1/0, true/false, yes/no")
    if base in ("int", "float"):
        try:
            return int(text) if base == "int" else float(text)
        except ValueError:
            raise _bad(label, dotted, raw, "is not a number", "write e.g. 30") from None
    if base in ("strlist", "pathlist", "bindlist"):
        if text.startswith("["):
            return _toml_value(text, dotted, label)
        return [p.strip() for p in text.split(",") if p.strip()]
    if base == "strmap":
        if text.startswith("{"):
            return _toml_value(text, dotted, label)
        out: dict[str, str] = {}
        # a comma starts a new pair only before NAME=, so values may hold commas
        for item in (p for p in re.split(r",(?=\s*[A-Za-z_][A-Za-z0-9_]*=)", text) if p.strip()):
            name, sep, val = item.partition("=")
            if not sep:
                raise _bad(label, dotted, raw, "is not NAME=value,...", "e.g. UCX_TLS=self,tcp")
            out[name.strip()] = val
        return out
    return raw


def _toml_value(text: str, dotted: str, label: str) -> Any:
    try:
        return _toml.loads(f"v = {text}")["v"]
    except _toml.TOMLDecodeError as exc:
        raise _bad(
            label, dotted, text, f"is not a TOML value ({exc})", "check the quotes"
        ) from None


def _expand(value: str, dotted: str, label: str, environ: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in environ:
            raise _bad(
                label,
                dotted,
                value,
                f"uses ${name}, which is not set",
                f"set {name} or write the path out",
            )
        return environ[name]

    text = _VAR.sub(repl, value)
    if text == "~" or text.startswith("~/"):
        home = environ.get("HOME")
        if not home:
            raise _bad(
                label, dotted, value, "starts with ~ but HOME is not set", "write the path out"
            )
        text = home + text[1:]
    return text


def _path(value: Any, dotted: str, label: str, base_dir: str, environ: Mapping[str, str]) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _bad(label, dotted, value, "is not a path", 'write e.g. "/scratch/$USER/hpcbridge"')
    text = _expand(value, dotted, label, environ)
    return Path(os.path.normpath(os.path.join(base_dir, text)))


def _str_list(value: Any, dotted: str, label: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _bad(label, dotted, value, "is not a list of strings", '["a", "b"]')
    return list(value)


def _deny_entry(value: str, dotted: str, label: str, environ: Mapping[str, str]) -> str:
    text = _expand(value, dotted, label, environ)
    tree = text.endswith("/**")
    path = text[:-3] or "/" if tree else text
    if not path.startswith("/"):
        raise _bad(
            label, dotted, value, "is not an absolute path", 'write e.g. "/etc" or "/etc/**"'
        )
    norm = os.path.normpath(path)
    return (norm.rstrip("/") + "/**") if tree else norm


def _binds(
    value: Any, dotted: str, label: str, base_dir: str, environ: Mapping[str, str]
) -> tuple[Any, ...]:
    from hpcbridge.job.sections import parse_binds

    if not isinstance(value, list):
        raise _bad(label, dotted, value, "is not a list of binds", '["/scratch:/scratch:rw"]')
    expanded = [_expand(v, dotted, label, environ) if isinstance(v, str) else v for v in value]
    try:
        binds = parse_binds(expanded, base_dir, ())
    except JobSpecError as exc:
        raise ConfigError(f"{label}: {dotted}: {exc.message}", exc.hint) from None
    return binds


# ------------------------------------------------------------------- assemble


def build_config(
    layers: Sequence[Layer], files: Sequence[str], environ: Mapping[str, str]
) -> Config:
    """Merge layers (later wins per key) with the site policies, build the dataclasses."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []
    floor: Optional[float] = None
    for layer in layers:
        if layer.level > 1 and floor is None:
            floor = values.get("polling.min_interval")
        for dotted, value in layer.values.items():
            label = layer.labels.get(dotted, layer.label)
            if dotted == "polling.min_interval" and floor is not None and value < floor:
                warnings.append(
                    f"{label}: polling.min_interval = {value:g} is below the site minimum "
                    f"{floor:g} s ({sources[dotted]}); using {floor:g}"
                )
                continue
            if dotted == "binds.deny" and layer.level > 1:
                merged = tuple(dict.fromkeys((*values.get(dotted, ()), *value)))
                values[dotted] = merged
                sources[dotted] = f"{sources[dotted]} + {label}"
                continue
            values[dotted] = value
            sources[dotted] = label
    defaults = _computed_defaults(values, environ)
    for dotted, value in defaults.items():
        if dotted not in values:
            values[dotted] = value
            sources[dotted] = "default"
    cfg = _assemble(values, sources, files, warnings)
    _check(cfg)
    return cfg


def _computed_defaults(values: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    from hpcbridge.fsutil import xdg_dir

    env = dict(environ)
    out: dict[str, Any] = {
        "cache.dir": xdg_dir("cache", env),
        "state.dir": xdg_dir("state", env),
        "runtime.executable": values.get("runtime.flavor", "apptainer"),
    }
    for section, keys in FIELDS.items():
        for key in keys:
            out.setdefault(f"{section}.{key}", None)
    names = {k.split(".")[1] for k in values if k.startswith("partitions.")}
    for name in names:
        for key in PARTITION_FIELDS:
            out[f"partitions.{name}.{key}"] = _partition_default(key)
    return out


def _partition_default(key: str) -> Any:
    return {"gpu_vendor": "none", "default": False}.get(key)


def _assemble(
    values: dict[str, Any], sources: dict[str, str], files: Sequence[str], warnings: list[str]
) -> Config:
    def sec(section: str) -> dict[str, Any]:
        return {k: values[f"{section}.{k}"] for k in FIELDS[section]}

    names = sorted({k.split(".")[1] for k in values if k.startswith("partitions.")})
    partitions = {
        name: Partition(
            name=name, **{k: values[f"partitions.{name}.{k}"] for k in PARTITION_FIELDS}
        )
        for name in names
    }
    for name in names:
        sources.pop(f"partitions.{name}", None)
    clean_sources = {k: v for k, v in sources.items() if k in _all_keys(names)}
    return Config(
        runtime=RuntimeConfig(**sec("runtime")),
        binds=BindsConfig(**sec("binds")),
        cache=CacheConfig(**sec("cache")),
        convert=ConvertConfig(**sec("convert")),
        env=EnvConfig(**sec("env")),
        polling=PollingConfig(**sec("polling")),
        scheduler=SchedulerConfig(**sec("scheduler")),
        state=StateConfig(**sec("state")),
        templates=TemplatesConfig(**sec("templates")),
        gpu=GpuConfig(**sec("gpu")),
        mpi=MpiConfig(**sec("mpi")),
        limits=LimitsConfig(**sec("limits")),
        partitions=partitions,
        sources=clean_sources,
        layers=tuple(files),
        warnings=tuple(warnings),
    )


def _all_keys(partition_names: Sequence[str]) -> list[str]:
    keys = [f"{s}.{k}" for s, ks in FIELDS.items() for k in ks]
    keys += [f"partitions.{n}.{k}" for n in partition_names for k in PARTITION_FIELDS]
    return keys


def _check(cfg: Config) -> None:
    """Cross-key checks, naming the source of the offending value."""
    if cfg.polling.max_backoff < cfg.polling.min_interval:
        raise ConfigError(
            f"{cfg.source_of('polling.max_backoff')}: polling.max_backoff = "
            f"{cfg.polling.max_backoff:g} is below polling.min_interval = {cfg.polling.min_interval:g}",
            "raise max_backoff",
        )
    bounds = LEVELS[cfg.convert.compression]
    if bounds is None and cfg.set_no_earlier("convert.level", "convert.compression"):
        raise ConfigError(  # a level from a lower layer (the site's, for gzip) does not apply
            f"{cfg.source_of('convert.level')}: convert.level = {cfg.convert.level} is set, "
            f"but {cfg.convert.compression} takes no compression level",
            f"remove it there, or use a compressor with levels: {with_levels()}",
        )
    if bounds is not None and cfg.convert.level > bounds[1]:
        raise ConfigError(
            f"{cfg.source_of('convert.level')}: convert.level = {cfg.convert.level} is above "
            f"{bounds[1]}, the maximum for {cfg.convert.compression}",
            f"use {bounds[0]}-{bounds[1]}",
        )
    defaults = [p.name for p in cfg.partitions.values() if p.default]
    if len(defaults) > 1:
        where = cfg.source_of(f"partitions.{defaults[-1]}.default")
        raise ConfigError(
            f"{where}: partitions {', '.join(defaults)} are all marked default = true",
            "mark exactly one partition as the default",
        )
    for p in cfg.partitions.values():
        where = cfg.source_of(f"partitions.{p.name}.default_time")
        if p.max_time is not None and p.default_time is not None and p.default_time > p.max_time:
            raise ConfigError(
                f"{where}: partitions.{p.name}.default_time is above its max_time",
                "lower default_time or raise max_time",
            )
        if p.gpus_per_node and not p.has_gpus:
            raise ConfigError(
                f"{cfg.source_of(f'partitions.{p.name}.gpus_per_node')}: partitions.{p.name} "
                'has gpus_per_node but gpu_vendor = "none"',
                'set gpu_vendor = "nvidia" or "amd"',
            )
