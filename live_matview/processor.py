"""Bring the database's materialized views in line with the view models, in one transaction.

The sync joins two stages: the views' DDL (``schema``) and the capture they need
(``capture``: the table -> view map, the triggers). ``MaterializedViewsProcessor`` keeps the
name and entry point that django-materialized-view users call from their test fixtures.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from functools import partial

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from .capture.install import sync_capture
from .capture.source_map import forget_source_maps
from .schema import introspection
from .schema.database_graph import build_graph, database_graph, existing_views, forget_graphs
from .schema.lock import lock_sync
from .schema.planning import CREATE, DROP, RECREATE, SyncPlan, make_plan
from .schema.sync import apply_plan
from .sync_catch_up import WriteListener, catch_up, mark_rebuilt

__all__ = ["MaterializedViewsProcessor", "forget_caches", "plan_views", "sync_views"]

logger = logging.getLogger("live_matview.processor")

SYNC_MARK_SOURCE = "live_matview sync"


def forget_caches() -> None:
    """Drop this process's cached view graphs and source maps (after a sync commits)."""
    forget_graphs()
    forget_source_maps()


def plan_views(using: str = DEFAULT_DB_ALIAS) -> SyncPlan:
    """What a sync would do, computed in a transaction that is then rolled back."""
    connection = connections[using]
    with transaction.atomic(using=using):
        plan = make_plan(using)
        # Capture changes are found by making them, then rolling everything back.
        with connection.cursor() as cursor:
            if introspection.relation_oid(cursor, "live_matview_source") is not None:
                plan.capture_changes = sync_capture(cursor, connection, plan.graph)
        transaction.set_rollback(True, using=using)
    return plan


def sync_views(using: str = DEFAULT_DB_ALIAS) -> SyncPlan:
    """Create, recreate, reindex and drop views so that the database matches the models.

    Everything happens in one transaction: on any error nothing has changed and
    ``SyncError`` names the view, where its query comes from, and PostgreSQL's message.
    Views created or rebuilt are marked in that transaction and, if a write may have
    committed meanwhile, refreshed once it has committed (``sync_catch_up``): such writes
    are in neither their data nor, before the commit, the map that tells writers whom to
    mark.
    """
    connection = connections[using]
    # Inside an outer transaction the catch-up runs at its commit, after this returns.
    listener = None if connection.in_atomic_block else WriteListener.open(using)
    try:
        with transaction.atomic(using=using):
            lock_sync(connection)
            plan = make_plan(using)
            with connection.cursor() as cursor:
                apply_plan(cursor, connection, plan)
                fresh_graph = build_graph(
                    cursor, plan.graph.nodes, existing_views(cursor, connection, plan.graph.nodes)
                )
                plan.capture_changes = sync_capture(cursor, connection, fresh_graph)
                rebuilt, tables = mark_rebuilt(cursor, using, plan, fresh_graph)
            transaction.on_commit(forget_caches, using=using)
            if rebuilt:
                after_commit = partial(catch_up, using, rebuilt, tables, listener)
                transaction.on_commit(after_commit, using=using)
    finally:
        if listener is not None:
            listener.close()
    for line in plan.describe():
        logger.debug("%s", line)
    return plan


class MaterializedViewsProcessor:
    """django-materialized-view's entry point: ``process_materialized_views()`` syncs.

    The old step methods are kept for code that called them. The steps cannot run apart
    without breaking the sync's one transaction, so each one that changes the database
    runs the whole sync (a second run finds nothing left to do); the ``views_*`` sets say
    what was planned and done, by view name (``Meta.db_table``), as they used to.
    """

    CREATE_COMMAND_TEMPLATE = "CREATE MATERIALIZED VIEW %s AS %s;"
    DELETE_VIEW_COMMAND_TEMPLATE = "DROP MATERIALIZED VIEW IF EXISTS %s %s;"
    CASCADE = "CASCADE"
    MATERIALIZED_VIEW_FIELD_NAME = "materialized_view"
    REF_TABLE_FIELD_NAME = "ref_table"

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using
        self.views_to_create: set[str] = set()
        self.views_to_recreate: set[str] = set()
        self.views_to_delete: set[str] = set()
        self.created_views: set[str] = set()
        self.recreated_views: set[str] = set()
        self.deleted_views: set[str] = set()

    def process_materialized_views(self) -> SyncPlan:
        plan = sync_views(self.using)
        self._record(plan)
        return plan

    def plan(self) -> SyncPlan:
        return plan_views(self.using)

    def add_view_to_be_created(self, view_name: str) -> None:
        self.views_to_create.add(view_name)

    def add_view_to_be_recreated(self, view_name: str) -> None:
        self.views_to_recreate.add(view_name)

    def add_view_to_be_deleted(self, view_name: str) -> None:
        self.views_to_delete.add(view_name)

    def mark_to_be_applied_new_views(self) -> None:
        """Fill the create and recreate sets from the plan (nothing changes yet)."""
        plan = self.plan()
        self.views_to_create |= {a.view_name for a in plan.of_kind(CREATE)}
        self.views_to_recreate |= {a.view_name for a in plan.of_kind(RECREATE)}

    def mark_to_be_deleted_old_views(self) -> None:
        """Fill the delete set: views this library (or the old one) made whose model is gone."""
        self.views_to_delete |= {a.view_name for a in self.plan().of_kind(DROP)}

    def create_views(self) -> None:
        self.process_materialized_views()

    def recreate_views(self) -> None:
        self.process_materialized_views()

    def delete_views(self) -> None:
        self.process_materialized_views()

    def get_view_list_sorted_by_dependencies(self, views: Iterable[str]) -> OrderedDict[str, int]:
        """The named views and every view built on them, parents first, each with a
        priority that falls along the order (the old method's shape)."""
        graph = database_graph(self.using)
        by_name = {model._meta.db_table: model for model in graph.nodes}
        roots = {by_name[name] for name in views if name in by_name}
        ordered = graph.order(roots | graph.descendants(roots))
        return OrderedDict(
            (model._meta.db_table, len(ordered) - index) for index, model in enumerate(ordered)
        )

    def _record(self, plan: SyncPlan) -> None:
        for kind, planned, done in (
            (CREATE, self.views_to_create, self.created_views),
            (RECREATE, self.views_to_recreate, self.recreated_views),
            (DROP, self.views_to_delete, self.deleted_views),
        ):
            names = {action.view_name for action in plan.of_kind(kind)}
            done |= names
            planned -= names
