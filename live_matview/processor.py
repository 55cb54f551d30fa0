"""Bring the database's materialized views in line with the view models, in one transaction.

The sync joins two stages: the views' DDL (``schema``) and the capture they need
(``capture``: the table -> view map, the triggers). ``MaterializedViewsProcessor`` keeps the
name and entry point that django-materialized-view users call from their test fixtures.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Any

from django.apps import apps
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from . import conf
from .capture.install import sync_capture
from .capture.source_map import build_source_map, forget_source_maps
from .exceptions import LiveMatviewError
from .refresh.passes import refresh_pass, with_dependents
from .schema import introspection
from .schema.database_graph import build_graph, database_graph, existing_views, forget_graphs
from .schema.lock import lock_sync
from .schema.migration_guard import views_out_of_the_way
from .schema.planning import CREATE, DROP, RECREATE, SyncPlan, make_plan
from .schema.sync import apply_plan
from .views.declaration import ViewModel
from .views.graph import DependencyGraph

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
    committed meanwhile, refreshed once it has committed (``_catch_up``): such writes are
    in neither their data nor, before the commit, the map that tells writers whom to mark.
    """
    connection = connections[using]
    # Inside an outer transaction the catch-up runs at its commit, after this returns.
    listener = None if connection.in_atomic_block else _WriteListener.open(using)
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
                rebuilt, tables = _mark_rebuilt(cursor, using, plan, fresh_graph)
            transaction.on_commit(forget_caches, using=using)
            if rebuilt:
                catch_up = partial(_catch_up, using, rebuilt, tables, listener)
                transaction.on_commit(catch_up, using=using)
    finally:
        if listener is not None:
            listener.close()
    for line in plan.describe():
        logger.debug("%s", line)
    return plan


class _WriteListener:
    """Hears whether any captured write committed in the database while a sync ran: the
    capture trigger NOTIFYs once per writing transaction, on commit. When nothing was
    written, the views the sync created hold everything and need no second refresh."""

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper
        self.heard = False

    @classmethod
    def open(cls, using: str) -> _WriteListener | None:
        if conf.capture() != "triggers":
            return None  # Django-side capture sends no NOTIFY: always catch up
        wrapper = connections.create_connection(using)
        try:
            wrapper.ensure_connection()
            wrapper.set_autocommit(True)
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT current_setting('live_matview.notify', true)")
                if cursor.fetchone()[0] == "off":
                    wrapper.close()
                    return None
                listener = cls(wrapper)
                if hasattr(wrapper.connection, "add_notify_handler"):  # psycopg 3
                    wrapper.connection.add_notify_handler(listener._on_notify)
                cursor.execute("LISTEN live_matview")
        except Exception:  # noqa: BLE001  (e.g. a pooler that cannot LISTEN: catch up always)
            wrapper.close()
            return None
        return listener

    def _on_notify(self, notify: Any) -> None:
        self.heard = True

    def heard_writes(self) -> bool:
        """A query makes the server deliver every notification committed before it."""
        with self.wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
        raw = self.wrapper.connection
        if getattr(raw, "notifies", None):  # psycopg 2 collects them in a list
            self.heard = True
        return self.heard

    def close(self) -> None:
        self.wrapper.close()


def _mark_rebuilt(
    cursor: Any, using: str, plan: SyncPlan, graph: DependencyGraph
) -> tuple[set[ViewModel], list[int]]:
    """Mark the created and recreated views that have sources (their own, or those of the
    views they read), so that they are refreshed even if this process ends right after the
    commit; returns them and the oids of those source tables."""
    rebuilt = {action.model for action in plan.of_kind(CREATE, RECREATE) if action.model}
    if not rebuilt:
        return set(), []
    source_map = build_source_map(using, graph)
    tables: dict[ViewModel, set[Any]] = {}
    for view in graph.order():
        inherited = set().union(*(tables[parent] for parent in graph.parents[view]))
        tables[view] = source_map.direct_tables.get(view, set()) | inherited
    marked = {view for view in rebuilt if tables.get(view)}
    if not marked:
        return set(), []
    cursor.executemany(
        "INSERT INTO live_matview_dirtymark (view_name, source, marked_at) VALUES (%s, %s, now())",
        [(view._meta.db_table, SYNC_MARK_SOURCE) for view in sorted(marked, key=_label)],
    )
    names = set().union(*(tables[view] for view in marked))
    oids = [
        oid
        for name in names
        if (oid := introspection.relation_oid(cursor, name.quoted(cursor.db))) is not None
    ]
    return marked, sorted(oids)


_IN_FLIGHT_WRITERS = """
    SELECT DISTINCT l.virtualtransaction, l.pid FROM pg_locks l
    WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock' AND l.granted
      AND l.relation = ANY(%s) AND l.pid <> pg_backend_pid()
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _catch_up(
    using: str, views: set[ViewModel], tables: list[int], listener: _WriteListener | None
) -> None:
    """After the sync's commit: wait for the transactions that were writing the views'
    source tables meanwhile (their capture trigger used the old map, so they marked
    nothing for these views), then refresh the views, so the refresh sees their writes;
    or, when no write committed since the sync began, just drop the sync's marks."""
    with connections[using].cursor() as cursor:
        cursor.execute(_IN_FLIGHT_WRITERS, [tables])
        writers = {str(vxid): pid for vxid, pid in cursor.fetchall()}
        if writers:
            logger.warning(
                "Waiting for %d transaction(s) that wrote to the sources of %s while the "
                "sync ran (pids %s), so that the refresh after the sync includes them.",
                len(writers),
                ", ".join(sorted(_label(view) for view in views)),
                ", ".join(str(pid) for pid in sorted(set(writers.values()))),
            )
        deadline = time.monotonic() + conf.sync_lock_timeout()
        while writers:
            cursor.execute(_IN_FLIGHT_WRITERS, [tables])
            writers = {str(vxid): pid for vxid, pid in cursor.fetchall() if str(vxid) in writers}
            if writers and time.monotonic() > deadline:
                logger.error(
                    "Transactions of pids %s still write to the sources of %s after %.0f s "
                    "(LIVE_MATVIEW_SYNC_LOCK_TIMEOUT); refreshing without waiting for them, "
                    "so their writes show only after the next write to those tables.",
                    ", ".join(str(pid) for pid in sorted(set(writers.values()))),
                    ", ".join(sorted(_label(view) for view in views)),
                    conf.sync_lock_timeout(),
                )
                break
            if writers:
                time.sleep(0.05)  # no SQL waits on another session's transaction
        if listener is not None and not listener.heard_writes():
            cursor.execute(
                "DELETE FROM live_matview_dirtymark WHERE source = %s AND view_name = ANY(%s)",
                [SYNC_MARK_SOURCE, [view._meta.db_table for view in views]],
            )
            return
    refresh_pass(using, with_dependents(using, views), trigger="drain")


def _label(view: ViewModel) -> str:
    return str(view._meta.label)


class _MigrateRun(threading.local):
    """Per thread: the databases whose ``migrate`` is running, with the column guard
    entered for each; and those whose sync the running ``migrate_with_views`` does itself."""

    def __init__(self) -> None:
        self.guards: dict[str, ExitStack] = {}
        self.synced_by_command: set[str] = set()


_migrate_run = _MigrateRun()


@contextmanager
def sync_done_by_caller(using: str) -> Iterator[None]:
    """``migrate_with_views`` syncs (and reports) itself after ``migrate``."""
    _migrate_run.synced_by_command.add(using)
    try:
        yield
    finally:
        _migrate_run.synced_by_command.discard(using)


def _models_apps() -> list[Any]:
    return [config for config in apps.get_app_configs() if config.models_module is not None]


def _hook_applies(using: str, kwargs: dict[str, Any]) -> bool:
    """``migrate`` passes a ``plan``; ``flush`` (which test cases run) does not."""
    return (
        "plan" in kwargs and conf.sync_on_migrate() and using not in _migrate_run.synced_by_command
    )


def migrate_starting(sender: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """``pre_migrate`` receiver: before the first app's migrations, let column changes
    drop and restore the views in the way, as ``migrate_with_views`` does."""
    if sender is not _models_apps()[0] or not _hook_applies(using, kwargs):
        return
    leftover = _migrate_run.guards.pop(using, None)
    if leftover is not None:  # a migrate of this thread that failed before post_migrate
        leftover.close()
    stack = ExitStack()
    stack.enter_context(views_out_of_the_way(using))
    _migrate_run.guards[using] = stack


def migrate_finished(
    sender: Any, using: str = DEFAULT_DB_ALIAS, verbosity: int = 1, **kwargs: Any
) -> None:
    """``post_migrate`` receiver: after the last app, sync the views of database
    ``using``, once per ``migrate`` run; a failure fails the ``migrate``."""
    if sender is not _models_apps()[-1] or not _hook_applies(using, kwargs):
        return
    guard = _migrate_run.guards.pop(using, None)
    if guard is not None:
        guard.close()
    stdout = kwargs.get("stdout") or sys.stdout
    with connections[using].cursor() as cursor:
        missing = introspection.relation_oid(cursor, "live_matview_source") is None
    if missing:  # e.g. "migrate shop 0001" on a new database, before live_matview's own
        if verbosity >= 1:
            stdout.write("Materialized views: not synced, live_matview is not migrated yet.\n")
        return
    try:
        plan = sync_views(using)
    except LiveMatviewError as exc:
        raise CommandError(str(exc)) from exc
    for line in report_lines(plan, applied=True, verbosity=verbosity):
        stdout.write(line + "\n")


def report_lines(plan: SyncPlan, *, applied: bool, verbosity: int) -> list[str]:
    """What a sync did (or would do), as ``migrate_with_views`` and ``migrate`` print it."""
    if verbosity < 1:
        return []
    lines = ["Materialized views:" if applied else "Planned materialized view changes:"]
    if not plan.has_changes:
        lines.append("  No changes.")
    lines.extend(
        f"  {action.describe()}" for action in (plan.changes if verbosity < 2 else plan.actions)
    )
    lines.extend(f"  capture  {change}" for change in plan.capture_changes)
    return lines


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
