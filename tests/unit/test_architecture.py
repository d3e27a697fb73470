"""The house rules of the package's shape, read from the source (AST only, no import).

* no import cycle among hpcbridge's modules, counting imports inside functions and
  under ``if TYPE_CHECKING:`` (a type-only import is still a dependency);
* only hpcbridge/runner.py starts processes (imports ``subprocess``, calls ``os.system``,
  ``os.exec*``, ``os.spawn*``, ``os.popen``, ``os.posix_spawn*``, ``pty.spawn``);
* the command line (hpcbridge/cli/) never imports hpcbridge.runner or hpcbridge.scheduler:
  it goes through the library;
* no module over 400 lines, no function over 80 lines (generated data aside: :data:`GENERATED`).

The failure messages name every offender, so one run shows all that is left to do.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "hpcbridge"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# Modules that are generated data, exempt from the size rules (paths relative to the package;
# none today: the verbatim Apptainer scripts are package data files, images/sif/data/).
GENERATED: frozenset[str] = frozenset()
PROCESS_STARTERS = {"system", "popen", "posix_spawn", "posix_spawnp"}
PROCESS_PREFIXES = ("exec", "spawn")


@functools.lru_cache(maxsize=1)
def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


@functools.cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """(dotted name, line) of everything ``module`` imports, anywhere in its body.

    ``from a.b import c`` yields ``a.b.c`` when that is a module, else ``a.b``;
    relative imports are resolved against ``module``'s package.
    """
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    known = modules()
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package[: len(package) - node.level + 1]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if full in known else base), node.lineno


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (the nearest existing module of each name)."""
    known = modules()
    edges: dict[str, set[str]] = {m: set() for m in known}
    for module, path in known.items():
        for name, _ in imported(module, path):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                edges[module].add(name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def test_cycle_finder_finds_a_cycle_and_only_it() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"x": {"y"}, "y": set()}) == []


def test_no_import_cycle() -> None:
    edges = graph()
    found = cycles(edges)
    detail = []
    for component in found:
        members = set(component)
        detail.append(
            "cycle: "
            + "; ".join(f"{m} -> {', '.join(sorted(edges[m] & members))}" for m in component)
        )
    assert found == [], "\n".join(detail)


def test_only_the_runner_starts_processes() -> None:
    offenders = []
    for module, path in modules().items():
        if module == "hpcbridge.runner":
            continue
        for name, line in imported(module, path):
            if name == "subprocess" or name.startswith("subprocess."):
                offenders.append(f"{module}:{line} imports {name}")
        for node in ast.walk(tree(path)):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)):
                continue
            owner, attr = node.value.id, node.attr
            if (
                owner == "os" and (attr in PROCESS_STARTERS or attr.startswith(PROCESS_PREFIXES))
            ) or (owner == "pty" and attr == "spawn"):
                offenders.append(f"{module}:{node.lineno} uses {owner}.{attr}")
    assert offenders == [], "\n".join(offenders)


def test_cli_goes_through_the_library() -> None:
    offenders = []
    for module, path in modules().items():
        if not module.startswith("hpcbridge.cli"):
            continue
        for name, line in imported(module, path):
            for banned in ("hpcbridge.runner", "hpcbridge.scheduler"):
                if name == banned or name.startswith(banned + "."):
                    offenders.append(f"{module}:{line} imports {name}")
    assert offenders == [], "\n".join(offenders)


def _functions(node: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for child in ast.walk(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield child


def test_modules_and_functions_are_short() -> None:
    offenders = []
    for path in modules().values():
        rel = str(path.relative_to(PACKAGE))
        if rel in GENERATED:
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            offenders.append(f"{rel}: {lines} lines (max {MAX_MODULE_LINES})")
        for fn in _functions(tree(path)):
            length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
            if length > MAX_FUNCTION_LINES:
                offenders.append(
                    f"{rel}:{fn.lineno} {fn.name}(): {length} lines (max {MAX_FUNCTION_LINES})"
                )
    assert offenders == [], "\n".join(offenders)


def test_generated_allow_list_names_real_files() -> None:
    for rel in GENERATED:
        assert (PACKAGE / rel).is_file(), rel
