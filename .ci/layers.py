"""The project's layers and the imports between them.

``python .ci/layers.py`` (or ``make layers``) prints the package-level import graph (who
imports whom, how many import statements) and exits 1 when an import goes up a layer or
module-level imports form a cycle; ``--check`` prints only the offences. tests/test_layers.py
runs the check, so a wrong-way import fails the suite.

Layers, lowest first: a package may import its own layer's package and any lower one, never
a higher one or a sibling of its own layer.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Lowest first. Packages in one tuple are siblings: neither may import the other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("models",),
    ("heads",),
    ("engine",),
    ("server", "train"),
    ("benchmarks",),
    ("cli",),
)
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def top_package(path: Path) -> str:
    return path.relative_to(ROOT).parts[0]


def imported_packages(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) for every project import in ``path``, lazy ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in RANK]
    return found


def project_files() -> list[Path]:
    return sorted(p for pkg in RANK if (ROOT / pkg).is_dir() for p in (ROOT / pkg).rglob("*.py"))


def edges() -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for path in project_files():
        source = top_package(path)
        for _, target in imported_packages(path):
            if target != source:
                counts[(source, target)] += 1
    return counts


def violations() -> list[str]:
    """Every import that goes up a layer or sideways to a sibling package."""
    bad: list[str] = []
    for path in project_files():
        source = top_package(path)
        for line, target in imported_packages(path):
            if target != source and RANK[target] >= RANK[source]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {source} -> {target}")
    return bad


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports at module level (import time)."""
    names = {module_name(p): p for p in project_files()}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        targets: set[str] = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
        graph[name] = {t for t in targets if t in names and t != name}
    return graph


def cycles() -> list[list[str]]:
    """Groups of modules that import each other at module level (Tarjan's components)."""
    graph = module_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Print only the wrong-way imports.")
    args = parser.parse_args(argv)
    if not args.check:
        print("layers, lowest first: " + " < ".join("/".join(layer) for layer in LAYERS))
        for (source, target), n in sorted(edges().items()):
            mark = "" if RANK[target] < RANK[source] else "   <-- goes up"
            print(f"  {source:>10} -> {target:<10} {n:3d}{mark}")
    bad = violations() + [f"import cycle: {' <-> '.join(c)}" for c in cycles()]
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
