"""The generated blocks of docs/benchmarks.md: ``<!-- bench/NAME:begin -->`` ... ``:end -->``.

A benchmark script writes its block from its own result (parameters included), so
the text around the figures can never disagree with how they were measured.
"""

from __future__ import annotations

from pathlib import Path


def replace_block(path: Path, name: str, body: str) -> None:
    """Replace the block ``name`` of ``path`` with ``body``, or add it under ``## name``."""
    begin, end = f"<!-- bench/{name}:begin -->", f"<!-- bench/{name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + f"\n\n## {name}\n\nMeasured by `bench/{name}.py`.\n\n{block}\n"
    path.write_text(text, encoding="utf-8")
