"""The dependency graph of the views in one database: QuerySet edges plus ``pg_depend``.

Refreshes need it on every pass, so it is cached per database alias and dropped when
``migrate_with_views`` changes the views.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import connections, router, transaction

from .. import conf
from ..views.declaration import ViewModel
from ..views.graph import DependencyGraph
from ..views.registry import view_models
from . import incremental, introspection

_cache: dict[str, tuple[float, DependencyGraph]] = {}
_cache_lock = threading.Lock()


def managed_models(using: str) -> list[ViewModel]:
    """The view models that live in database ``using``, according to the routers."""
    return [model for model in view_models() if router.allow_migrate_model(using, model)]


def existing_views(cursor: Any, connection: Any, models: list[ViewModel]) -> dict[ViewModel, int]:
    """Oids of the models' views that exist (an incremental view's table)."""
    oids = {}
    for model in models:
        oid = incremental.view_oid(cursor, connection, model)
        if oid is not None:
            oids[model] = oid
    return oids


def build_graph(
    cursor: Any, models: list[ViewModel], oids: dict[ViewModel, int]
) -> DependencyGraph:
    """Edges from the QuerySets, plus those PostgreSQL records for views that exist."""
    graph = DependencyGraph.from_querysets(models)
    by_oid = {oid: model for model, oid in oids.items()}
    recorded = introspection.relation_dependencies(cursor, by_oid)
    return graph.with_edges(
        (by_oid[parent], by_oid[child]) for child, parent in recorded if parent in by_oid
    )


def database_graph(using: str) -> DependencyGraph:
    """The cached graph of database ``using``."""
    with _cache_lock:
        built_at, graph = _cache.get(using, (0.0, None))
    if graph is None or time.monotonic() - built_at > conf.cache_seconds():
        connection = connections[using]
        models = managed_models(using)
        with transaction.atomic(using=using), connection.cursor() as cursor:
            graph = build_graph(cursor, models, existing_views(cursor, connection, models))
        with _cache_lock:
            _cache[using] = (time.monotonic(), graph)
    return graph


def forget_graphs() -> None:
    """Drop cached graphs, after views were created or recreated."""
    with _cache_lock:
        _cache.clear()
