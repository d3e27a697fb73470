"""Dockerfile -> Apptainer/Singularity definition file (pure).

spython's Docker parser and Singularity writer get the parts that matter for a
working image wrong (runscript words glued without quoting, ``tar -zvf`` for
``ADD x.tar.gz``, quoted labels and ``ENV`` values kept with their quotes, ``ARG``
dropped, one shared shell for every ``RUN``), so the translation is done here on
:func:`hpcbridge.recipe.dockerfile.lex` output; tests compare with spython on the
inputs where it is sound.  Each deviation from Docker's behaviour that the
translation makes (or cannot avoid) becomes a :class:`Note`; what cannot be
translated raises :class:`~hpcbridge.errors.InputError`.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Sequence
from typing import Optional

from hpcbridge.errors import InputError
from hpcbridge.recipe.dockerfile import Instruction, lex
from hpcbridge.recipe.files import ADD_STAGING, add, copy
from hpcbridge.recipe.notes import Note, Translation
from hpcbridge.recipe.runscript import runscript_lines
from hpcbridge.recipe.state import VERBATIM, State
from hpcbridge.recipe.words import (
    NAME_RE,
    Word,
    WordError,
    dq,
    open_quote_at_end,
    quote_argv,
    split_assignments,
    split_raw,
    split_words,
    sq,
    substitute,
)

IGNORED = {
    "EXPOSE": "ports are not isolated under Apptainer; the program listens on the host's network",
    "VOLUME": "Apptainer has no volumes; bind a host directory with --bind",
    "STOPSIGNAL": "Apptainer forwards the signal it receives",
    "HEALTHCHECK": "Apptainer has no health checks",
    "ONBUILD": "definition files have no build triggers",
}


def dockerfile_to_def(text: str, name: str = "Dockerfile") -> Translation:
    """Translate Dockerfile text into definition-file text plus notes."""
    st = State(name)
    for ins in lex(text, name):
        handler = _HANDLERS.get(ins.keyword)
        if handler is None:
            raise st.fail(ins, f"unknown instruction {ins.keyword}", "check the Dockerfile")
        if st.base is None and ins.keyword not in {"FROM", "ARG"}:
            raise st.fail(ins, f"{ins.keyword} before FROM", "start the Dockerfile with FROM")
        try:
            handler(st, ins)
        except WordError as exc:
            raise st.fail(ins, str(exc), "close the quote") from exc
    if st.base is None:
        raise InputError(f"{name}: no FROM instruction", "a Dockerfile starts with FROM <image>")
    return Translation(_render(st, name), tuple(st.notes))


def _from(st: State, ins: Instruction) -> None:
    if st.base is not None:
        raise st.fail(
            ins,
            "multi-stage Dockerfile (a second FROM) is not translated",
            "build it with docker/podman/buildah, push it, then `hpcbridge convert` the image",
        )
    if "platform" in ins.flags:
        st.note(
            ins,
            f"FROM --platform={ins.flags['platform']} ignored: Apptainer pulls its own platform",
        )
    words = ins.args.split()
    if not words:
        raise st.fail(ins, "FROM without an image", "write FROM <image>")
    if len(words) == 3 and words[1].lower() == "as":
        words = words[:1]
    if len(words) != 1:
        raise st.fail(ins, f"cannot read FROM {ins.args!r}", "write FROM <image> [AS <name>]")
    image, missing = substitute(words[0], st.global_args)
    if missing:
        raise st.fail(
            ins,
            f"FROM {words[0]} uses ARG {', '.join(missing)} without a default",
            "give the ARG a default value before FROM",
        )
    if image == "scratch":
        raise st.fail(
            ins, "FROM scratch is not translated", "definition files need a base image to run %post"
        )
    st.base = image


def _arg(st: State, ins: Instruction) -> None:
    for item in _split_or_fail(st, ins, legacy=False, allow_bare=True):
        name, word = item
        if st.base is None:
            if word is not None:  # without a default it stays unknown: FROM $NAME is refused
                st.global_args[name] = word.literal
            continue
        if word is None:
            if name in st.global_args:
                word = Word(st.global_args[name], dq(st.global_args[name]), ())
            else:
                st.note(ins, f"ARG {name} has no default: it is unset in %post (give it a value)")
                continue
        st.known[name] = word.literal
        st.post.append(f"export {name}={word.shell}")
        st.note(
            ins,
            f"ARG {name} exported in %post with its default (Apptainer has no --build-arg for %post)",
        )


#: Variables Apptainer sets from the caller at run time; ``ENV`` would replace them for all.
CALLER_VARS = {"USER", "LOGNAME", "HOME"}


def _env(st: State, ins: Instruction) -> None:
    for name, word in _split_or_fail(st, ins, legacy=True, allow_bare=False):
        assert word is not None
        if name in CALLER_VARS:
            st.note(
                ins,
                f"ENV {name}: %environment sets ${name} for every caller at run time "
                f"(Apptainer runs as the caller, whose own ${name} is replaced); "
                "drop it unless the program needs it",
            )
        st.known[name] = word.literal
        line = f"export {name}={word.shell}"
        st.environment.append(line)
        st.post.append(line)


def _split_or_fail(
    st: State, ins: Instruction, *, legacy: bool, allow_bare: bool
) -> list[tuple[str, Optional[Word]]]:
    out: list[tuple[str, Optional[Word]]] = []
    if allow_bare:
        for raw in split_raw(ins.args):
            if "=" not in raw:
                if not NAME_RE.match(raw):
                    raise st.fail(ins, f"bad name {raw!r}", "names are letters, digits and _")
                out.append((raw, None))
                continue
            for a in split_assignments(raw, st.known, allow_legacy=False):
                out.append((a.name, a.value))
    else:
        for a in split_assignments(ins.args, st.known, allow_legacy=legacy):
            out.append((a.name, a.value))
    for name, _ in out:
        if not NAME_RE.match(name):
            raise st.fail(ins, f"bad variable name {name!r}", "names are letters, digits and _")
    if not out:
        raise st.fail(ins, f"{ins.keyword} without a value", f"write {ins.keyword} NAME=value")
    return out


def _label(st: State, ins: Instruction) -> None:
    assigns = split_assignments(ins.args, st.known, allow_legacy=True)
    if not assigns:
        raise st.fail(ins, "LABEL without a value", "write LABEL key=value")
    for a in assigns:
        if not a.name or any(c.isspace() for c in a.name) or "\n" in a.value.literal:
            raise st.fail(
                ins, f"label {a.name!r} cannot be written to %labels", "no spaces in keys"
            )
        st.labels.append((a.name, a.value.literal))
    if len(assigns) > 1:
        st.note(ins, f"LABEL with {len(assigns)} labels written as {len(assigns)} %labels lines")


def _maintainer(st: State, ins: Instruction) -> None:
    st.labels.append(("maintainer", ins.args.strip()))


def _run(st: State, ins: Instruction) -> None:
    for flag in ins.flags:
        st.note(ins, f"RUN --{flag} ignored: definition files have no equivalent")
    st.seen_run = True
    if ins.heredoc is not None:
        st.post.extend(_heredoc_run(st.shell, ins.heredoc))
        return
    if ins.exec_form is not None:
        st.post.append(quote_argv(ins.exec_form))
        return
    st.post.extend(_shell_call(st.shell, ins.pieces))


def _shell_call(shell: Sequence[str], pieces: Sequence[str]) -> list[str]:
    """``shell... '<script>'`` keeping the RUN's line breaks where the shell allows it."""
    script = ""
    for i, piece in enumerate(pieces):
        if i == 0:
            script = piece.strip()
        elif open_quote_at_end(script) or not (piece[:1].isspace() or script[-1:].isspace()):
            script += piece  # inside quotes or a word, Docker's join is the text itself
        else:
            script += " \\\n    " + piece.lstrip()
    return (quote_argv(shell) + " " + sq(script)).split("\n")


def _heredoc_run(shell: Sequence[str], body: Sequence[str]) -> list[str]:
    """``RUN <<EOF``: the body run by its #! interpreter or the shell, lines verbatim."""
    argv = list(shell)
    if body and body[0].startswith("#!"):
        argv = [*shlex.split(body[0][2:]), "-c"]
    quoted = sq("\n".join(body))
    first, *rest = quoted.split("\n")
    return [quote_argv(argv) + " " + first, *(VERBATIM + line for line in rest)]


def _shell(st: State, ins: Instruction) -> None:
    if ins.exec_form is None or not ins.exec_form:
        raise st.fail(ins, "SHELL needs the JSON form", 'write SHELL ["/bin/bash", "-c"]')
    st.shell = ins.exec_form


def _workdir(st: State, ins: Instruction) -> None:
    words = split_words(ins.args, st.known)
    if len(words) != 1:
        raise st.fail(ins, f"cannot read WORKDIR {ins.args!r}", "write WORKDIR /path")
    path = posixpath.normpath(posixpath.join(st.workdir, words[0].literal))
    st.workdir = path
    st.add_dir(path)
    st.workdir_line = ins.lineno
    st.post.append(f"mkdir -p {sq(path)} && cd {sq(path)}")


def _user(st: State, ins: Instruction) -> None:
    user = ins.args.strip()
    if user.split(":")[0] in {"root", "0"}:
        return
    st.post.append(f"# USER {user} (not applied)")
    st.note(
        ins,
        f"USER {user} not applied: %post runs as root and Apptainer runs the container as the caller",
    )


def _entrypoint(st: State, ins: Instruction) -> None:
    st.entrypoint = _argv(st, ins)
    st.entrypoint_line = ins.lineno
    if ins.exec_form is None:
        st.note(ins, "ENTRYPOINT in shell form ignores CMD and run arguments (as in Docker)")


def _cmd(st: State, ins: Instruction) -> None:
    st.cmd = _argv(st, ins)
    st.cmd_line = ins.lineno


def _argv(st: State, ins: Instruction) -> tuple[str, ...]:
    if ins.exec_form is not None:
        return ins.exec_form
    return (*st.shell, ins.args)


def _ignored(st: State, ins: Instruction) -> None:
    st.note(ins, f"{ins.keyword} ignored: {IGNORED[ins.keyword]}")


_HANDLERS = {
    "FROM": _from,
    "ARG": _arg,
    "ENV": _env,
    "LABEL": _label,
    "MAINTAINER": _maintainer,
    "RUN": _run,
    "SHELL": _shell,
    "WORKDIR": _workdir,
    "USER": _user,
    "ENTRYPOINT": _entrypoint,
    "CMD": _cmd,
    "COPY": copy,
    "ADD": add,
    **{k: _ignored for k in IGNORED},
}


def _render(st: State, name: str) -> str:
    assert st.base is not None
    out = [f"# Generated by hpcbridge recipe from {posixpath.basename(name)}"]
    out += ["Bootstrap: docker", f"From: {st.base}", ""]

    def section(title: str, lines: Sequence[str]) -> None:
        if lines:
            out.append(f"%{title}")
            for line in lines:
                if line.startswith(VERBATIM):
                    out.append(line[len(VERBATIM) :])
                else:
                    out.append(("    " + line) if line else "")
            out.append("")

    section("files", [f"{s} {d}" for s, d in st.files])
    section("labels", [f"{k} {v}".rstrip() for k, v in st.labels])
    section("environment", st.environment)
    post = list(st.post)
    if st.used_staging:
        post.append(f"rmdir {sq(ADD_STAGING)} 2>/dev/null || true")
    if post:
        post = ["set -e", *post]
    section("post", post)
    if st.entrypoint is not None or st.cmd is not None:
        if st.cmd is not None and st.entrypoint is None:
            st.notes.append(
                Note(
                    name,
                    st.cmd_line,
                    "CMD without ENTRYPOINT: a base-image ENTRYPOINT is not prepended",
                )
            )
        section("runscript", runscript_lines(st.entrypoint, st.cmd))
    if st.workdir != "/":
        st.notes.append(
            Note(
                name,
                st.workdir_line,
                f"WORKDIR {st.workdir}: the container starts in the caller's directory "
                f"(Apptainer's rule); run with --pwd {st.workdir} for Docker's",
            )
        )
    st.notes.sort(key=lambda n: n.line)
    return "\n".join(out).rstrip("\n") + "\n"
