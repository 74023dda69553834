"""Fail when any module of gatewaytui or bench imports itself back through others (an import circle).

Every import counts, also those under ``TYPE_CHECKING`` and those inside functions: a circle that only a
type annotation or a deferred import hides is still a circle in the design. Run by ``.ci/run``:

    python scripts/import_cycles.py [PACKAGE ...]      (default: gatewaytui bench)
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def circles(package: str) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    graph = grimp.build_graph(package, cache_dir=None)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if i < len(targets):
                work.append((node, i + 1))
                nxt = targets[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
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
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    failed = False
    for package in argv or ["gatewaytui", "bench"]:
        for component in circles(package):
            failed = True
            print(f"import circle in {package}: {' <-> '.join(component)}")
    if not failed:
        print("no import circles")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
