"""Bring the database's materialized views in line with the view models, in one transaction.

The sync joins two stages: the views' DDL (``schema``) and the capture they need
(``capture``: the table -> view map, the triggers). ``MaterializedViewsProcessor`` keeps the
name and entry point that django-materialized-view users call from their test fixtures.
"""

from __future__ import annotations

import logging

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from .capture.install import sync_capture
from .capture.source_map import forget_source_maps
from .schema import introspection
from .schema.database_graph import build_graph, existing_views, forget_graphs
from .schema.planning import SyncPlan, make_plan
from .schema.sync import apply_plan, lock_sync

__all__ = ["MaterializedViewsProcessor", "forget_caches", "plan_views", "sync_views"]

logger = logging.getLogger("live_matview.processor")


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
    """
    connection = connections[using]
    with transaction.atomic(using=using):
        lock_sync(connection)
        plan = make_plan(using)
        with connection.cursor() as cursor:
            apply_plan(cursor, connection, plan)
            fresh_graph = build_graph(
                cursor, plan.graph.nodes, existing_views(cursor, connection, plan.graph.nodes)
            )
            plan.capture_changes = sync_capture(cursor, connection, fresh_graph)
        transaction.on_commit(forget_caches, using=using)
    for line in plan.describe():
        logger.debug("%s", line)
    return plan


class MaterializedViewsProcessor:
    """django-materialized-view's entry point: ``process_materialized_views()`` syncs."""

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using

    def process_materialized_views(self) -> SyncPlan:
        return sync_views(self.using)

    def plan(self) -> SyncPlan:
        return plan_views(self.using)
