"""Which views a write to a table makes stale, in one database.

A view's sources are its ``refresh_on`` models (with their m2m tables), or for
``refresh_on = "auto"`` the tables PostgreSQL records it reading; a view also inherits
the sources of every view it reads, so a write to ``Order`` dirties the views built on
the views built on ``Order``. The map is cached per database alias and dropped after a sync.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from django.db import connections, transaction
from django.db.models import ManyToManyField

from .. import conf
from ..schema import introspection
from ..schema.database_graph import database_graph, existing_views
from ..views.declaration import ViewDeclaration, ViewModel
from ..views.graph import DependencyGraph, reachable
from ..views.names import RelationName
from ..views.registry import declared_sources
from .triggers import TRIGGER_NAME

_cache: dict[str, tuple[float, SourceMap]] = {}
_lock = threading.Lock()


def table_keys(name: RelationName) -> list[str]:
    """The spellings under which SQL may name a table: bare and schema-qualified."""
    if name.schema is None:
        return [name.name, f"public.{name.name}"]
    keys = [f"{name.schema}.{name.name}"]
    if name.schema == "public":
        keys.append(name.name)
    return keys


@dataclass
class SourceMap:
    """Who reads what, split the way marks and refreshes need it.

    A write marks the views that read the written table directly (``readers_by_table``);
    refreshing a view marks the views that read it (``dependents``), inside the refresh's
    transaction, so a child is marked only by a parent refresh that can include the write.
    The pass that follows a commit refreshes readers and all their dependents
    (``views_by_table``), parents first.
    """

    direct_tables: dict[ViewModel, set[RelationName]] = field(default_factory=dict)
    readers_by_table: dict[str, set[ViewModel]] = field(default_factory=dict)
    views_by_table: dict[str, set[ViewModel]] = field(default_factory=dict)
    dependents: dict[ViewModel, set[ViewModel]] = field(default_factory=dict)
    #: Tables whose capture trigger is in place and enabled (their marks come from it).
    triggered: set[str] = field(default_factory=set)

    def views_for(self, tables: set[str] | list[str]) -> set[ViewModel]:
        found: set[ViewModel] = set()
        for table in tables:
            found |= self.views_by_table.get(table, set())
        return found

    def act_on_commit(self, tables: set[str] | list[str]) -> bool:
        """Whether a commit that wrote ``tables`` has anything to refresh or hand on: a
        view they dirty is not ``manual`` (its own mode, or the setting's, read now). A
        write that dirties only manual views is done once its marks are written."""
        default = conf.refresh_mode()
        return any((view.refresh_mode or default) != "manual" for view in self.views_for(tables))

    def children_to_mark(self, view: ViewModel, refreshed: Collection[ViewModel] = ()) -> list[str]:
        """The views a refresh of ``view`` marks (by ``db_table``): those that read it or
        list it in ``refresh_on`` are stale once it is refreshed.

        Not one the current pass has ``refreshed`` already that ``view`` depends on: views
        that list each other in ``refresh_on`` would otherwise mark each other forever,
        full and by-key refreshes alike."""
        children = self.dependents.get(view, ())
        return sorted(
            child._meta.db_table
            for child in children
            if not (child in refreshed and view in reachable([child], self.dependents))
        )

    def readers_of(self, tables: set[str] | list[str]) -> set[ViewModel]:
        found: set[ViewModel] = set()
        for table in tables:
            found |= self.readers_by_table.get(table, set())
        return found


def _direct_sources(
    view: ViewModel, cursor: Any, oids: dict[ViewModel, int]
) -> tuple[set[RelationName], set[ViewModel]]:
    """(tables, parent views) that ``view`` names itself."""
    tables: set[RelationName] = set()
    parents: set[ViewModel] = set()
    if view.refresh_on == "auto":
        oid = oids.get(view)
        if oid is not None:
            tables |= recorded_tables(cursor, oid)
        return tables, parents
    for source in declared_sources(view):
        if issubclass(source, ViewDeclaration):
            parents.add(source)
            continue
        tables.add(RelationName.parse(source._meta.db_table))
        for m2m in source._meta.local_many_to_many:
            through = m2m.remote_field.through if isinstance(m2m, ManyToManyField) else None
            if through is not None and through._meta.auto_created:
                tables.add(RelationName.parse(through._meta.db_table))
    return tables, parents


def recorded_tables(cursor: Any, oid: int) -> set[RelationName]:
    """Ordinary and partitioned tables a view reads, as PostgreSQL records them, followed
    through plain views: ``pg_depend`` records a plain view, not the tables under it, yet a
    write to those tables changes what the view reads. (A materialized view it reads is
    a parent, whose own sources are inherited; it is not followed here.)"""
    cursor.execute(
        """
        WITH RECURSIVE reads(oid) AS (
            SELECT d.refobjid
            FROM pg_rewrite r
            JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
             AND d.refclassid = 'pg_class'::regclass
            WHERE r.ev_class = %s AND d.refobjid <> r.ev_class
            UNION
            SELECT d.refobjid
            FROM reads
            JOIN pg_class v ON v.oid = reads.oid AND v.relkind = 'v'
            JOIN pg_rewrite r ON r.ev_class = v.oid
            JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
             AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
        )
        SELECT DISTINCT n.nspname, c.relname
        FROM reads
        JOIN pg_class c ON c.oid = reads.oid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p')
        """,
        [oid],
    )
    return {RelationName(name, schema) for schema, name in cursor.fetchall()}


def _triggered_tables(cursor: Any) -> set[RelationName]:
    cursor.execute(
        """
        SELECT n.nspname, c.relname
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE t.tgname LIKE %s AND t.tgenabled <> 'D'
        """,
        [f"pgtrigger_{TRIGGER_NAME}_%"],
    )
    return {RelationName(name, schema) for schema, name in cursor.fetchall()}


def build_source_map(using: str, graph: DependencyGraph | None = None) -> SourceMap:
    connection = connections[using]
    graph = database_graph(using) if graph is None else graph
    # Often built inside a writer's transaction: a savepoint keeps it harmless.
    with transaction.atomic(using=using), connection.cursor() as cursor:
        oids = existing_views(cursor, connection, graph.nodes)
        direct = {view: _direct_sources(view, cursor, oids) for view in graph.nodes}
        triggered = _triggered_tables(cursor)
    dependents: dict[ViewModel, set[ViewModel]] = {view: set() for view in graph.nodes}
    for view in graph.nodes:
        for parent in graph.parents[view] | direct[view][1]:
            dependents.setdefault(parent, set()).add(view)
    source_map = SourceMap(
        direct_tables={view: direct[view][0] for view in graph.nodes}, dependents=dependents
    )
    source_map.triggered = {key for table in triggered for key in table_keys(table)}
    for view, tables in source_map.direct_tables.items():
        affected = {view} | reachable([view], dependents)
        for table in tables:
            for key in table_keys(table):
                source_map.readers_by_table.setdefault(key, set()).add(view)
                source_map.views_by_table.setdefault(key, set()).update(affected)
    return source_map


def source_map(using: str) -> SourceMap:
    """The cached map of database ``using``, read again after ``LIVE_MATVIEW_CACHE_SECONDS``."""
    expires, cached = _cache.get(using, (0.0, None))  # a dict read is atomic
    if cached is None or time.monotonic() > expires:
        cached = build_source_map(using)
        with _lock:
            _cache[using] = (time.monotonic() + conf.cache_seconds(), cached)
    return cached


def forget_source_maps() -> None:
    with _lock:
        _cache.clear()


def relation_oids(
    cursor: Any, connection: Any, names: set[RelationName]
) -> dict[RelationName, int]:
    result = {}
    for name in names:
        oid = introspection.relation_oid(cursor, name.quoted(connection))
        if oid is not None:
            result[name] = oid
    return result
