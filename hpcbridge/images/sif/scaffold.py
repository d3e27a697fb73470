"""The Apptainer scaffolding of a converted image, as ``apptainer build`` writes it.

Pure text generation (``scaffold_entries``, ``runscript``, ``docker_env_script``,
``labels``, ``inspect_metadata``, ``oci_config_json``...) plus one small writer
(:func:`write_scaffold`) that puts the entries into a root filesystem through the
confined :class:`~hpcbridge.images.layers.apply.RootfsWriter`.

Sources: apptainer/apptainer ``internal/pkg/build/sources/{base_environment.go,
conveyorPacker_oci.go}``, ``internal/pkg/build/metadata.go``,
``cmd/internal/cli/inspect.go``, ``pkg/inspect/metadata.go``.  The scripts
of ``/.singularity.d`` are package data copied from Apptainer 1.4.5 byte for
byte (``data/``, read by :func:`apptainer_text`; see ``data/NOTICE``).
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import TYPE_CHECKING, Any, Optional, Union

from hpcbridge.images.sif.gocompat import (
    args_quoted,
    escape_single_quotes,
    go_json,
    go_map,
    go_quote,
    render_go_template,
    shell_escape,
)

if TYPE_CHECKING:
    from hpcbridge.images.layers.apply import RootfsWriter

__all__ = [
    "Entry",
    "Scaffold",
    "apptainer_text",
    "args_quoted",
    "build_labels",
    "deffile",
    "docker_env_script",
    "escape_single_quotes",
    "go_json",
    "go_map",
    "go_quote",
    "inspect_metadata",
    "make_scaffold",
    "oci_config_json",
    "parse_created",
    "runscript",
    "shell_escape",
    "split_source",
    "write_scaffold",
]

_ENV_NAME = re.compile(r"^[a-zA-Z_]{1,}[a-zA-Z0-9_]{0,}$")
_TRANSPORTS = ("docker-archive", "oci-archive", "docker", "oci")
# The verbatim files of /.singularity.d in the order they are written (the empty
# env/94-appsbase.sh goes after the seventh).
_VERBATIM = (
    "actions/exec",
    "actions/run",
    "actions/shell",
    "actions/start",
    "actions/test",
    "env/01-base.sh",
    "env/90-environment.sh",
    "env/95-apps.sh",
    "env/99-base.sh",
    "env/99-runtimevars.sh",
    "startscript",
)


@dataclass(frozen=True)
class Entry:
    """One thing to create in the rootfs: ``kind`` is ``dir``, ``file`` or ``symlink``."""

    path: str
    kind: str
    mode: int = 0o755
    content: str = ""


@functools.cache
def apptainer_text(name: str) -> str:
    """A verbatim Apptainer file of ``data/``: ``actions/run``, ``env/01-base.sh``,
    ``startscript`` (under ``singularity.d/``) or ``oci-runscript.tmpl``."""
    where = resources.files("hpcbridge.images.sif") / "data"
    if not name.endswith(".tmpl"):
        where = where / "singularity.d"
    for part in name.split("/"):
        where = where / part
    return where.read_bytes().decode("utf-8")


# -- runscript and environment ---------------------------------------------


def runscript(entrypoint: Sequence[str], cmd: Sequence[str]) -> str:
    """``/.singularity.d/runscript`` for an OCI ENTRYPOINT/CMD (``insertRunScript``)."""
    text = "#!/bin/sh\n"
    ep = escape_single_quotes(args_quoted(entrypoint)) if entrypoint else ""
    cm = escape_single_quotes(args_quoted(cmd)) if cmd else ""
    text += f"OCI_ENTRYPOINT='{ep}'\n"
    text += f"OCI_CMD='{cm}'\n"
    prepend_cmd = "".join(f"set -- '{escape_single_quotes(c)}' \"$@\"\n" for c in reversed(cmd))
    prepend_ep = "".join(
        f"set -- '{escape_single_quotes(c)}' \"$@\"\n" for c in reversed(entrypoint)
    )
    return text + render_go_template(
        apptainer_text("oci-runscript.tmpl"),
        {"PrependCmd": prepend_cmd, "PrependEntrypoint": prepend_ep},
    )


def docker_env_script(env: Sequence[str]) -> str:
    """``/.singularity.d/env/10-docker2singularity.sh`` from the image Env (``insertEnv``)."""
    lines = ["#!/bin/sh\n"]
    for element in env:
        name, sep, value = element.partition("=")
        if not _ENV_NAME.match(name):
            continue
        if not sep:
            lines.append(f'export {name}="${{{name}:-}}"\n')
        elif name == "PATH":
            lines.append(f"export {name}={go_quote(shell_escape(value))}\n")
        else:
            lines.append(f'export {name}="${{{name}:-{go_quote(shell_escape(value))}}}"\n')
    return "".join(lines)


# -- definition, labels, metadata ------------------------------------------


def parse_created(created: Any) -> int:
    """Unix seconds of an OCI ``created`` RFC 3339 timestamp (0 if absent or invalid)."""
    if not isinstance(created, str) or not created:
        return 0
    m = re.match(
        r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$",
        created,
    )
    if not m:
        return 0
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    try:
        secs = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0))
    except (ValueError, OverflowError):
        return 0
    tz = m.group(8)
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return max(secs, 0)


def split_source(source_ref: str) -> tuple[str, str]:
    """``(bootstrap, from)`` of a source reference, as apptainer's definition header has them."""
    for transport in _TRANSPORTS:
        prefix = transport + ":"
        if source_ref.startswith(prefix):
            rest = source_ref[len(prefix) :]
            if transport == "docker":
                rest = rest[2:] if rest.startswith("//") else rest
            return transport, rest
    return "docker", source_ref


def deffile(source_ref: str) -> str:
    """The definition apptainer synthesises for ``build x.sif <ref>``."""
    bootstrap, frm = split_source(source_ref)
    return f"bootstrap: {bootstrap}\nfrom: {frm}\n\n"


def build_labels(
    image_labels: Optional[Mapping[str, str]],
    *,
    source_ref: str,
    manifest_digest: str,
    created: int,
    architecture: str,
    variant: str = "",
) -> dict[str, str]:
    """``labels.json`` content: image labels plus apptainer's build labels (deterministic)."""
    labels = dict(image_labels or {})
    t = datetime.fromtimestamp(created, tz=timezone.utc)
    labels["org.label-schema.schema-version"] = "1.0"
    labels["org.opencontainers.image.created"] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
    labels["org.label-schema.build-date"] = (
        f"{t.strftime('%A')}_{t.day}_{t.strftime('%B')}_{t.year}_{t.hour}:{t.minute}:{t.second}_UTC"
    )
    bootstrap, frm = split_source(source_ref)
    labels["org.label-schema.usage.singularity.deffile.bootstrap"] = bootstrap
    labels["org.label-schema.usage.singularity.deffile.from"] = frm
    if bootstrap == "docker" and manifest_digest:
        if not re.match(r"^sha(256|512):[0-9a-f]+$", frm):  # a bare digest names no image
            labels["org.opencontainers.image.base.name"] = frm
        labels["org.opencontainers.image.base.digest"] = manifest_digest
    labels["org.opencontainers.image.architecture"] = architecture
    if variant:
        labels["org.opencontainers.image.variant"] = variant
    labels["org.label-schema.build-arch"] = architecture
    return labels


_OCI_CONFIG_FIELDS = (
    "AttachStderr",
    "AttachStdin",
    "AttachStdout",
    "Cmd",
    "Healthcheck",
    "Domainname",
    "Entrypoint",
    "Env",
    "Hostname",
    "Image",
    "Labels",
    "OnBuild",
    "OpenStdin",
    "StdinOnce",
    "Tty",
    "User",
    "Volumes",
    "WorkingDir",
    "ExposedPorts",
    "ArgsEscaped",
    "NetworkDisabled",
    "MacAddress",
    "StopSignal",
    "Shell",
)
_HEALTH_FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")


def oci_config_json(image_config: Mapping[str, Any]) -> str:
    """The ``oci-config.json`` SIF object: go-containerregistry ``v1.Config`` marshalled."""
    out: dict[str, Any] = {}
    for key in _OCI_CONFIG_FIELDS:
        val = image_config.get(key)
        if not val:
            continue
        if key == "Healthcheck" and isinstance(val, Mapping):
            val = {k: val[k] for k in _HEALTH_FIELDS if val.get(k)}
        elif key in ("Volumes", "ExposedPorts") and isinstance(val, Mapping):
            val = {k: {} for k in sorted(val)}
        elif key == "Labels" and isinstance(val, Mapping):
            val = go_map(val)
        out[key] = val
    return go_json(out)


def inspect_metadata(
    *,
    labels: Mapping[str, str],
    env_files: Mapping[str, str],
    runscript_text: str,
    startscript: str,
    deffile_text: str,
) -> str:
    """``inspect-metadata.json``: what ``apptainer inspect --all --json`` finds in the rootfs."""
    attrs: dict[str, Any] = {}
    env = {path: text.rstrip("\n") for path, text in sorted(env_files.items()) if text.rstrip("\n")}
    if env:
        attrs["environment"] = go_map(env)
    if labels:
        attrs["labels"] = go_map(labels)
    for key, text in (
        ("runscript", runscript_text),
        ("deffile", deffile_text),
        ("startscript", startscript),
    ):
        if text.rstrip("\n"):
            attrs[key] = text.rstrip("\n")
    return go_json({"data": {"attributes": attrs}, "type": "container"})


# -- the whole scaffold ----------------------------------------------------


@dataclass(frozen=True)
class Scaffold:
    entries: tuple[Entry, ...]
    deffile: str
    labels: dict[str, str]
    inspect_json: str
    oci_config_json: str
    created: int


def make_scaffold(config: Mapping[str, Any], *, source_ref: str, manifest_digest: str) -> Scaffold:
    """Everything the conversion adds to the rootfs and the SIF, from the image config."""
    cfg: Mapping[str, Any] = config.get("config") or {}
    created = parse_created(config.get("created"))
    arch = str(config.get("architecture") or "amd64")
    labels = build_labels(
        cfg.get("Labels"),
        source_ref=source_ref,
        manifest_digest=manifest_digest,
        created=created,
        architecture=arch,
        variant=str(config.get("variant") or ""),
    )
    run = runscript(list(cfg.get("Entrypoint") or []), list(cfg.get("Cmd") or []))
    env10 = docker_env_script(list(cfg.get("Env") or []))
    definition = deffile(source_ref)
    sd = ".singularity.d"
    entries = [
        Entry(f"{sd}/libs", "dir"),
        Entry(f"{sd}/actions", "dir"),
        Entry(f"{sd}/env", "dir"),
        *(Entry(d, "dir") for d in ("dev", "proc", "root", "var/tmp", "tmp", "etc", "sys", "home")),
        Entry("singularity", "symlink", content=f"{sd}/runscript"),
        Entry(".run", "symlink", content=f"{sd}/actions/run"),
        Entry(".exec", "symlink", content=f"{sd}/actions/exec"),
        Entry(".test", "symlink", content=f"{sd}/actions/test"),
        Entry(".shell", "symlink", content=f"{sd}/actions/shell"),
        Entry("environment", "symlink", content=f"{sd}/env/90-environment.sh"),
        Entry("etc/hosts", "file", 0o644, ""),
        Entry("etc/resolv.conf", "file", 0o644, ""),
        *(Entry(f"{sd}/{n}", "file", 0o755, apptainer_text(n)) for n in _VERBATIM[:7]),
        Entry(f"{sd}/env/94-appsbase.sh", "file", 0o755, ""),
        *(Entry(f"{sd}/{n}", "file", 0o755, apptainer_text(n)) for n in _VERBATIM[7:]),
        Entry(f"{sd}/runscript", "file", 0o755, run),
        Entry(f"{sd}/env/10-docker2singularity.sh", "file", 0o755, env10),
        Entry(f"{sd}/labels.json", "file", 0o644, go_json(go_map(labels), indent="\t")),
        Entry(f"{sd}/Singularity", "file", 0o644, definition),
    ]
    workdir = str(cfg.get("WorkingDir") or "")
    if workdir:
        entries.append(Entry(workdir, "dir"))
    inspect = inspect_metadata(
        labels=labels,
        env_files={
            f"/{sd}/env/10-docker2singularity.sh": env10,
            f"/{sd}/env/90-environment.sh": apptainer_text("env/90-environment.sh"),
        },
        runscript_text=run,
        startscript=apptainer_text("startscript"),
        deffile_text=definition,
    )
    return Scaffold(
        entries=tuple(entries),
        deffile=definition,
        labels=labels,
        inspect_json=inspect,
        oci_config_json=oci_config_json(cfg),
        created=created,
    )


def write_scaffold(
    root: Union[str, RootfsWriter], entries: Sequence[Entry], mtime: int = 0
) -> None:
    """Create ``entries`` in a rootfs directory (or a writer's tree), never following a symlink out."""
    from hpcbridge.images.layers.apply import RootfsWriter, clean_parts

    writer = RootfsWriter(root) if isinstance(root, str) else root
    writer.start_layer("scaffold")
    fs = writer.fs
    for e in entries:
        parts, _ = clean_parts(e.path)
        if e.kind == "dir":
            writer.ensure_dir(e.path)
            continue
        parent = writer.resolve_dir(parts[:-1], create=True)
        rel = f"{parent}/{parts[-1]}" if parent else parts[-1]
        st = fs.stat(rel)
        if e.kind == "symlink":
            if st is None:  # apptainer keeps an existing /singularity, /.run ...
                fs.symlink(e.content, rel, mtime)
            continue
        if st is not None:
            writer.remove(rel, st)
        fs.write_bytes(rel, e.mode, e.content.encode("utf-8", "surrogateescape"), mtime)
