"""The order views must be built and refreshed in: ``parent -> child`` where a child reads
its parent, with the edges a view's QuerySet shows (``schema.database_graph`` adds those
PostgreSQL records)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..exceptions import DependencyCycleError
from .declaration import ViewModel
from .names import RelationName
from .query import get_queryset

_QUOTED_IDENTIFIER = re.compile(r'"((?:[^"]|"")*)"')


def queryset_identifiers(model: ViewModel) -> set[str]:
    """The quoted identifiers of the view's compiled QuerySet (empty for a SQL file).

    Django quotes every table it puts in SQL, so these name every relation the query
    reads, subqueries included (and its column aliases, which match no table).
    """
    queryset = get_queryset(model)
    if queryset is None:
        return set()
    compiled, _params = queryset.query.sql_with_params()
    return {match.replace('""', '"') for match in _QUOTED_IDENTIFIER.findall(compiled)}


def queryset_parents(model: ViewModel, candidates: Iterable[ViewModel]) -> set[ViewModel]:
    """Other views this view's QuerySet reads."""
    tokens = queryset_identifiers(model)
    parents = set()
    for candidate in candidates:
        if candidate is model:
            continue
        if RelationName.parse(candidate._meta.db_table).name in tokens:
            parents.add(candidate)
    return parents


class DependencyGraph:
    """Views as nodes, ``parent -> child`` edges where a child reads its parent."""

    def __init__(self, nodes: Iterable[ViewModel], edges: Iterable[tuple[ViewModel, ViewModel]]):
        self.nodes: list[ViewModel] = sorted(set(nodes), key=lambda m: m._meta.label_lower)
        self.children: dict[ViewModel, set[ViewModel]] = {node: set() for node in self.nodes}
        self.parents: dict[ViewModel, set[ViewModel]] = {node: set() for node in self.nodes}
        for parent, child in edges:
            if parent in self.children and child in self.children and parent is not child:
                self.children[parent].add(child)
                self.parents[child].add(parent)

    @classmethod
    def from_querysets(cls, nodes: Iterable[ViewModel]) -> DependencyGraph:
        node_list = list(nodes)
        edges = [
            (parent, model) for model in node_list for parent in queryset_parents(model, node_list)
        ]
        return cls(node_list, edges)

    def with_edges(self, edges: Iterable[tuple[ViewModel, ViewModel]]) -> DependencyGraph:
        existing = [(p, c) for p, kids in self.children.items() for c in kids]
        return DependencyGraph(self.nodes, [*existing, *edges])

    def order(self, subset: Iterable[ViewModel] | None = None) -> list[ViewModel]:
        """Parents before children (Kahn's algorithm, ties broken by label for stable output)."""
        remaining = {node: len(self.parents[node]) for node in self.nodes}
        ready = [node for node, count in remaining.items() if count == 0]
        ordered: list[ViewModel] = []
        while ready:
            ready.sort(key=lambda m: m._meta.label_lower, reverse=True)
            node = ready.pop()
            ordered.append(node)
            for child in self.children[node]:
                remaining[child] -= 1
                if remaining[child] == 0:
                    ready.append(child)
        if len(ordered) != len(self.nodes):
            raise DependencyCycleError(self._find_cycle(set(self.nodes) - set(ordered)))
        if subset is None:
            return ordered
        wanted = set(subset)
        return [node for node in ordered if node in wanted]

    def descendants(self, roots: Iterable[ViewModel]) -> set[ViewModel]:
        """Every view that reads one of ``roots``, directly or through other views."""
        seen: set[ViewModel] = set()
        stack = list(roots)
        while stack:
            for child in self.children.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def _find_cycle(self, stuck: set[ViewModel]) -> list[str]:
        start = min(stuck, key=lambda m: m._meta.label_lower)
        path, node = [start], start
        while True:
            node = min(
                (c for c in self.children[node] if c in stuck), key=lambda m: m._meta.label_lower
            )
            if node in path:
                cycle = path[path.index(node) :] + [node]
                return [m._meta.label for m in cycle]
            path.append(node)
