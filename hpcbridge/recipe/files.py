"""COPY and ADD: %files lines, archives unpacked in %post, downloads, here-documents (pure)."""

from __future__ import annotations

import posixpath
import re

from hpcbridge.recipe.dockerfile import Instruction
from hpcbridge.recipe.state import VERBATIM, State
from hpcbridge.recipe.words import split_words, sq, substitute

_ARCHIVE_RE = re.compile(r"\.(tar|tar\.gz|tgz|tar\.bz2|tbz2?|tar\.xz|txz)\Z", re.I)
_TAR_FLAG = {"gz": "z", "tgz": "z", "bz2": "j", "tbz": "j", "tbz2": "j", "xz": "J", "txz": "J"}
ADD_STAGING = "/.hpcbridge-add"


def copy(st: State, ins: Instruction) -> None:
    _copy_or_add(st, ins, add=False)


def add(st: State, ins: Instruction) -> None:
    _copy_or_add(st, ins, add=True)


def _copy_or_add(st: State, ins: Instruction, *, add: bool) -> None:
    if ins.heredoc is not None:
        _copy_heredoc(st, ins)
        return
    if "from" in ins.flags:
        raise st.fail(
            ins,
            f"{ins.keyword} --from={ins.flags['from']} (multi-stage) is not translated",
            "build it with docker/podman/buildah, then `hpcbridge convert` the image",
        )
    for flag in ins.flags:
        st.note(ins, f"{ins.keyword} --{flag} ignored: %files are owned by root with their modes")
    if ins.exec_form is not None:
        paths = [substitute(p, st.known)[0] for p in ins.exec_form]
    else:
        paths = [w.literal for w in split_words(ins.args, st.known)]
    if len(paths) < 2:
        raise st.fail(ins, f"{ins.keyword} needs a source and a destination", "write SRC DEST")
    *sources, dest = paths
    for p in paths:
        if any(c.isspace() for c in p):
            raise st.fail(ins, f"path {p!r} contains whitespace", "rename it for %files")
    dest = _destination(st, ins, dest, len(sources))
    for src in sources:
        if add and re.match(r"[a-z]+://", src):
            target = dest + posixpath.basename(src) if dest.endswith("/") else dest
            st.post.append(
                f"mkdir -p {sq(posixpath.dirname(target))} && "
                f"curl -fsSL --retry 3 -o {sq(target)} {sq(src)}"
            )
            st.note(ins, f"ADD {src}: downloaded with curl in %post (the image must have curl)")
            continue
        if add and _ARCHIVE_RE.search(src):
            _add_archive(st, ins, src, dest.rstrip("/") or "/")
            continue
        if src.endswith("/") and src.strip("/"):
            # Docker copies a directory's contents; Apptainer's `%files dir/ dest` nests
            # dir inside an existing dest, `dir/.` copies the contents (dot files too).
            st.note(
                ins, f"{ins.keyword} {src}: written as {src.rstrip('/')}/. to copy its contents"
            )
            src = src.rstrip("/") + "/."
        if st.seen_run and not st.noted_order:
            st.noted_order = True
            st.note(
                ins,
                f"{ins.keyword} after RUN: %files are copied before any %post line runs",
            )
        st.files.append((src, dest))


def _destination(st: State, ins: Instruction, dest: str, n_sources: int) -> str:
    """The %files destination: absolute, and ending in '/' when Docker copies INTO it.

    Docker copies into a directory when the destination ends in '/', is '.' or
    '..', gets several sources, or already is a directory -- WORKDIR's for
    instance.  Apptainer copies %files before %post, where the translated
    WORKDIR makes its directory: without the '/', ``COPY x .`` after ``WORKDIR
    /app`` would create a FILE /app and the build fail; with it, Apptainer
    creates the directory and copies into it (checked on the testbed)."""
    resolved = posixpath.normpath(posixpath.join(st.workdir, dest))
    into = (
        dest.endswith("/")
        or posixpath.basename(dest) in (".", "..")
        or n_sources > 1
        or resolved in st.dirs
    )
    if not into:
        return resolved
    if resolved != "/" and not dest.endswith("/") and resolved not in st.noted_dirs:
        st.noted_dirs.add(resolved)
        st.note(
            ins,
            f"{ins.keyword} into {resolved}: written as {resolved}/ so %files creates the directory",
        )
    st.add_dir(resolved)
    return resolved.rstrip("/") + "/"


def _copy_heredoc(st: State, ins: Instruction) -> None:
    assert ins.heredoc is not None
    dest = split_words(ins.args, st.known)[0].literal
    if dest.endswith("/"):
        raise st.fail(ins, "COPY <<EOF needs a file destination", "write COPY <<EOF /path/file")
    dest = posixpath.normpath(posixpath.join(st.workdir, dest))
    tag = "HPCB_EOF"
    while tag in ins.heredoc:
        tag += "_"
    opener = f"'{tag}'" if ins.heredoc_quoted else tag
    st.post.append(f"mkdir -p {sq(posixpath.dirname(dest))} && cat > {sq(dest)} <<{opener}")
    st.post.extend(VERBATIM + line for line in (*ins.heredoc, tag))
    for flag, value in ins.flags.items():
        if flag == "chmod" and re.fullmatch(r"[0-7]{3,4}", value):
            st.post.append(f"chmod {value} {sq(dest)}")
        else:
            st.note(ins, f"COPY --{flag} ignored: the file is owned by root")
    st.note(ins, f"COPY here-document: written to {dest} by %post")


def _add_archive(st: State, ins: Instruction, src: str, dest: str) -> None:
    suffix = src.rsplit(".", 1)[-1].lower()
    flag = _TAR_FLAG.get(suffix, "")
    staged = f"{ADD_STAGING}/{posixpath.basename(src)}"
    st.files.append((src, staged))
    st.used_staging = True
    st.post.append(f"mkdir -p {sq(dest)} && tar -x{flag}f {sq(staged)} -C {sq(dest)}")
    st.post.append(f"rm -f {sq(staged)}")
    st.note(ins, f"ADD {src}: copied in %files and unpacked into {dest} in %post")
