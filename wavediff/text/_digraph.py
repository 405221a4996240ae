"""The part of networkx that gruut uses, for gruut alone: ``DiGraph`` and ``dfs_preorder_nodes``.

gruut keeps each text it processes in a networkx ``DiGraph``, and ``import networkx`` (every algorithm,
generator and reader in the package) takes 0.2-0.3 s of a 2-core CPU: a sixth of ``wavediff synth``'s
time for a short sentence, for a graph of a few dozen nodes. gruut 2.4 calls eight ``DiGraph`` methods,
the ``nodes`` view and one traversal; this module has those, with networkx's semantics (adjacency in
insertion order, the same depth-first preorder, edges that are added twice kept once).

:func:`gruut_import` imports gruut's modules with this module standing in for networkx, and only for
them: ``sys.modules`` is restored afterwards, so an ``import networkx`` anywhere else gets the real
package. Where networkx is already imported, or ``WAVEDIFF_GRUUT_NETWORKX=1`` is set, gruut gets the real
one. ``tests/test_text.py`` checks the two against each other: the same graphs, the same traversal
orders, and the same phonemes for the same texts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import types
from typing import Any, Hashable, Iterable, Iterator

__all__ = ["DiGraph", "dfs_preorder_nodes", "gruut_import"]


class _NodeView:
    """``graph.nodes``: ``graph.nodes[n]`` is node n's attribute dict."""

    def __init__(self, nodes: dict) -> None:
        self._nodes = nodes

    def __getitem__(self, n: Hashable) -> dict:
        return self._nodes[n]

    def __iter__(self) -> Iterator:
        return iter(self._nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, n: object) -> bool:
        return n in self._nodes


class DiGraph:
    """A directed graph with networkx's ``DiGraph`` interface for what gruut calls."""

    def __init__(self) -> None:
        self._node: dict[Hashable, dict] = {}
        self._succ: dict[Hashable, dict[Hashable, dict]] = {}
        self._pred: dict[Hashable, dict[Hashable, dict]] = {}

    @property
    def nodes(self) -> _NodeView:
        return _NodeView(self._node)

    def __len__(self) -> int:
        return len(self._node)

    def __iter__(self) -> Iterator:
        return iter(self._node)

    def __contains__(self, n: object) -> bool:
        return n in self._node

    def _ensure(self, n: Hashable) -> None:
        if n not in self._node:
            self._succ[n], self._pred[n], self._node[n] = {}, {}, {}

    def add_node(self, n: Hashable, **attr: Any) -> None:
        self._ensure(n)
        self._node[n].update(attr)

    def add_edge(self, u: Hashable, v: Hashable, **attr: Any) -> None:
        self._ensure(u)
        self._ensure(v)
        data = self._succ[u].get(v, {})
        data.update(attr)
        self._succ[u][v] = self._pred[v][u] = data

    def add_edges_from(self, edges: Iterable[tuple]) -> None:
        for edge in edges:
            u, v, *rest = edge
            self.add_edge(u, v, **(rest[0] if rest else {}))

    def remove_edges_from(self, edges: Iterable[tuple]) -> None:
        """Edges that are not in the graph are skipped silently, as in networkx."""
        for edge in edges:
            u, v = edge[:2]
            if u in self._succ and v in self._succ[u]:
                del self._succ[u][v]
                del self._pred[v][u]

    def successors(self, n: Hashable) -> Iterator:
        return iter(self._succ[n])

    neighbors = successors

    def predecessors(self, n: Hashable) -> Iterator:
        return iter(self._pred[n])

    def out_degree(self, n: Hashable) -> int:
        return len(self._succ[n])

    def out_edges(self, n: Hashable) -> list[tuple]:
        return [(n, v) for v in self._succ[n]]


def dfs_preorder_nodes(graph: DiGraph, source: Hashable) -> Iterator:
    """Nodes reachable from ``source`` in depth-first preorder, successors in insertion order: networkx's
    ``dfs_preorder_nodes(graph, source)``, lazily like it (each node's successors are read when the search
    reaches it)."""
    visited = {source}
    yield source
    stack = [iter(graph.neighbors(source))]
    while stack:
        for child in stack[-1]:
            if child not in visited:
                visited.add(child)
                yield child
                stack.append(iter(graph.neighbors(child)))
                break
        else:
            stack.pop()


@contextlib.contextmanager
def gruut_import() -> Iterator[None]:
    """Imports inside this context that ``import networkx`` get this module's stand-in, unless networkx is
    already imported or ``WAVEDIFF_GRUUT_NETWORKX=1``; ``sys.modules`` has no ``networkx`` entry of ours after."""
    if "networkx" in sys.modules or os.environ.get("WAVEDIFF_GRUUT_NETWORKX") == "1":
        yield
        return
    stand_in = types.ModuleType("networkx", "wavediff's stand-in for the part of networkx that gruut uses")
    stand_in.DiGraph = DiGraph
    stand_in.dfs_preorder_nodes = dfs_preorder_nodes
    sys.modules["networkx"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("networkx") is stand_in:
            del sys.modules["networkx"]
