"""The order views must be built and refreshed in: ``parent -> child`` where a child reads
its parent, with the edges a view's QuerySet shows (``schema.database_graph`` adds those
PostgreSQL records)."""

from __future__ import annotations

import heapq
import logging
import re
import threading
from collections.abc import Iterable, Mapping

from ..exceptions import DependencyCycleError, ViewDefinitionError
from .declaration import ViewModel
from .names import RelationName
from .query import get_queryset

_QUOTED_IDENTIFIER = re.compile(r'"((?:[^"]|"")*)"')

logger = logging.getLogger("live_matview.views")

#: Labels of the views already reported as broken by this process: once each, not per write.
_reported: set[str] = set()
_reported_lock = threading.Lock()


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


def build_problem(model: ViewModel) -> str | None:
    """Why this process cannot build the view's query (user code that raises, such as a
    missing import), or ``None``. The first time, it is logged with the fix."""
    return _identifiers(model)[1]


def _identifiers(model: ViewModel) -> tuple[set[str], str | None]:
    """The QuerySet's identifiers, or no identifiers and why the query cannot be built.

    The dependency graph is built from every view's query and sits on every write's and
    every refresh's path: one broken view must cost its own refreshes, not everybody's.
    """
    try:
        identifiers = queryset_identifiers(model)
    except ViewDefinitionError as exc:
        problem = f"{model._meta.label} cannot be built: {exc}"
    except Exception as exc:  # noqa: BLE001  (user code: any failure is this view's alone)
        problem = (
            f"{model._meta.label} cannot be built: get_query_from_queryset() raised "
            f"{type(exc).__name__}: {exc}"
        )
    else:
        return identifiers, None
    _report(model, problem)
    return set(), problem


def _report(model: ViewModel, problem: str) -> None:
    with _reported_lock:
        if model._meta.label in _reported:
            return
        _reported.add(model._meta.label)
    logger.error(
        "%s. Fix the method (./manage.py check shows it too); until then this view is "
        "left out of the dependency graph and its refreshes fail, while the other views "
        "refresh as usual.",
        problem,
    )


def _parents_in(
    model: ViewModel, tokens: set[str], candidates: Iterable[ViewModel]
) -> set[ViewModel]:
    return {
        candidate
        for candidate in candidates
        if candidate is not model and RelationName.parse(candidate._meta.db_table).name in tokens
    }


def queryset_parents(model: ViewModel, candidates: Iterable[ViewModel]) -> set[ViewModel]:
    """Other views this view's QuerySet reads (none known while its query cannot be built)."""
    return _parents_in(model, _identifiers(model)[0], candidates)


def reachable(
    roots: Iterable[ViewModel], edges: Mapping[ViewModel, Iterable[ViewModel]]
) -> set[ViewModel]:
    """Every node reached from ``roots`` along ``edges`` (a root only through a cycle)."""
    seen: set[ViewModel] = set()
    stack = list(roots)
    while stack:
        for child in edges.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


class DependencyGraph:
    """Views as nodes, ``parent -> child`` edges where a child reads its parent."""

    def __init__(
        self,
        nodes: Iterable[ViewModel],
        edges: Iterable[tuple[ViewModel, ViewModel]],
        broken: dict[ViewModel, str] | None = None,
    ):
        #: Views whose query cannot be built, with the reason: nodes without QuerySet edges.
        self.broken: dict[ViewModel, str] = dict(broken or {})
        self.nodes: list[ViewModel] = sorted(set(nodes), key=lambda m: m._meta.label_lower)
        self.children: dict[ViewModel, set[ViewModel]] = {node: set() for node in self.nodes}
        self.parents: dict[ViewModel, set[ViewModel]] = {node: set() for node in self.nodes}
        self._order: list[ViewModel] | None = None
        for parent, child in edges:
            if parent in self.children and child in self.children and parent is not child:
                self.children[parent].add(child)
                self.parents[child].add(parent)

    @classmethod
    def from_querysets(cls, nodes: Iterable[ViewModel]) -> DependencyGraph:
        node_list = list(nodes)
        edges: list[tuple[ViewModel, ViewModel]] = []
        broken: dict[ViewModel, str] = {}
        for model in node_list:
            tokens, problem = _identifiers(model)
            if problem is not None:
                broken[model] = problem
            edges.extend((parent, model) for parent in _parents_in(model, tokens, node_list))
        return cls(node_list, edges, broken)

    def with_edges(self, edges: Iterable[tuple[ViewModel, ViewModel]]) -> DependencyGraph:
        existing = [(p, c) for p, kids in self.children.items() for c in kids]
        return DependencyGraph(self.nodes, [*existing, *edges], self.broken)

    def order(self, subset: Iterable[ViewModel] | None = None) -> list[ViewModel]:
        """Parents before children (Kahn's algorithm, ties broken by label for stable output).

        Computed once per graph: every refresh pass asks, and a graph never changes."""
        if self._order is None:
            self._order = self._topological_order()
        if subset is None:
            return list(self._order)
        wanted = set(subset)
        return [node for node in self._order if node in wanted]

    def _topological_order(self) -> list[ViewModel]:
        remaining = {node: len(self.parents[node]) for node in self.nodes}
        ready = [(node._meta.label_lower, node) for node, count in remaining.items() if not count]
        heapq.heapify(ready)
        ordered: list[ViewModel] = []
        while ready:
            _label, node = heapq.heappop(ready)
            ordered.append(node)
            for child in self.children[node]:
                remaining[child] -= 1
                if remaining[child] == 0:
                    heapq.heappush(ready, (child._meta.label_lower, child))
        if len(ordered) != len(self.nodes):
            raise DependencyCycleError(self._find_cycle(set(self.nodes) - set(ordered)))
        return ordered

    def descendants(self, roots: Iterable[ViewModel]) -> set[ViewModel]:
        """Every view that reads one of ``roots``, directly or through other views."""
        return reachable(roots, self.children)

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
