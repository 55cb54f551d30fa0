"""Apply a sync plan's DDL inside the caller's transaction: drop, create, reindex, record.

``processor.sync_views`` runs this and the capture sync in one transaction under the sync
lock; on any error nothing has changed and ``SyncError`` names the view, where its query
comes from, and PostgreSQL's message.
"""

from __future__ import annotations

from typing import Any

from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from .._compat import savepoint_create, sqlstate
from ..exceptions import SyncError
from ..models import ManagedView
from ..views.declaration import ViewModel
from ..views.incremental import is_incremental
from ..views.query import describe_source
from . import ddl, incremental, introspection
from .lock import SYNC_LOCK_KEY as SYNC_LOCK_KEY  # where callers found it before
from .planning import (
    ADOPT,
    CREATE,
    DROP,
    FORGET,
    LEGACY_TABLE,
    RECREATE,
    REINDEX,
    SyncPlan,
    ViewAction,
    check_columns,
    index_digest,
)

UNDEFINED_TABLE = "42P01"
DEPENDENT_OBJECTS_STILL_EXIST = "2BP01"


def apply_plan(cursor: Any, connection: BaseDatabaseWrapper, plan: SyncPlan) -> None:
    """Make the database match ``plan``; the caller holds the transaction and the lock."""
    _drop(cursor, connection, plan)
    _create(cursor, connection, plan)
    for action in plan.of_kind(REINDEX, ADOPT):
        _index(cursor, action, replace=action.kind == REINDEX)
    _record(cursor, plan)


def _drop(cursor: Any, connection: BaseDatabaseWrapper, plan: SyncPlan) -> None:
    """Drop what is rebuilt or gone, readers before what they read, never with CASCADE:
    a view this library does not manage that reads one of ours stops the sync instead of
    being destroyed silently."""
    doomed = {action.oid: action for action in plan.of_kind(RECREATE, DROP) if action.oid}
    names = introspection.relation_names(cursor, doomed)
    edges = introspection.relation_dependencies(cursor, doomed)
    remaining = set(doomed)
    while remaining:
        read = {parent for child, parent in edges if child in remaining and child != parent}
        leaves = sorted(remaining - read) or sorted(remaining)
        for oid in leaves:
            _execute_drop(cursor, doomed[oid], names[oid])
            remaining.discard(oid)


def _execute_drop(cursor: Any, action: ViewAction, quoted: str) -> None:
    savepoint = savepoint_create(using=cursor.db.alias)
    try:
        if action.oid is not None and introspection.relkind(cursor, action.oid) == "r":
            for statement in incremental.drop_statements(cursor, cursor.db, action.oid):
                cursor.execute(statement)
        else:
            cursor.execute(ddl.drop_view(quoted))
    except DatabaseError as exc:
        transaction.savepoint_rollback(savepoint, using=cursor.db.alias)
        if sqlstate(exc) == DEPENDENT_OBJECTS_STILL_EXIST and action.oid is not None:
            readers = [
                name for _oid, _kind, name in introspection.dependent_views(cursor, action.oid)
            ]
            raise SyncError(
                f"Cannot {action.kind} {action.view_name}: {', '.join(readers)} read it and "
                "are not managed by live_matview. Drop them or make them views of their own "
                "models, then run migrate_with_views again. Nothing was changed."
            ) from exc
        raise SyncError(f"Cannot drop {action.view_name}: {str(exc).strip()}") from exc
    transaction.savepoint_commit(savepoint, using=cursor.db.alias)


def _create(cursor: Any, connection: BaseDatabaseWrapper, plan: SyncPlan) -> None:
    """Create in dependency order. SQL-file views that read each other have no known edge
    before they exist, so a view whose parent is missing waits for the next round; the
    loop stops as soon as a round creates nothing."""
    pending = plan.of_kind(CREATE, RECREATE)
    while pending:
        waiting: list[tuple[ViewAction, BaseException]] = []
        for action in pending:
            assert action.model is not None
            savepoint = savepoint_create(using=connection.alias)
            try:
                for statement in _create_statements(action.model, connection):
                    cursor.execute(statement)
            except DatabaseError as exc:
                transaction.savepoint_rollback(savepoint, using=connection.alias)
                if sqlstate(exc) != UNDEFINED_TABLE:
                    raise _create_error(action.model, exc) from exc
                waiting.append((action, exc))
                continue
            transaction.savepoint_commit(savepoint, using=connection.alias)
            check_columns(cursor, action.model, ddl.relation(action.model).quoted(connection))
            _index(cursor, action, replace=False)
        if len(waiting) == len(pending):
            first, error = waiting[0]
            assert first.model is not None
            raise _create_error(first.model, error) from error
        pending = [action for action, _exc in waiting]


def _create_statements(model: ViewModel, connection: BaseDatabaseWrapper) -> list[str]:
    if is_incremental(model):
        return incremental.create_statements(model, connection)
    return [ddl.create_view(model, connection)]


def _create_error(model: ViewModel, exc: BaseException) -> SyncError:
    return SyncError(
        f"Cannot create {model._meta.label} (query from {describe_source(model)}): "
        f"{str(exc).strip()}. Nothing was changed."
    )


def _index(cursor: Any, action: ViewAction, *, replace: bool) -> None:
    model = action.model
    assert model is not None
    connection = cursor.db
    table = ddl.relation(model)
    oid = incremental.view_oid(cursor, connection, model)
    assert oid is not None
    present = introspection.index_names(cursor, oid)
    if replace:
        record = (
            ManagedView.objects.using(connection.alias).filter(view_name=action.view_name).first()
        )
        ours = set(action.indexes) | set(record.indexes if record else [])
        for name in sorted(ours & present):
            cursor.execute(ddl.drop_index(table, name, connection))
        present -= ours
    for name, statement in action.indexes.items():
        if name in present:
            continue
        try:
            cursor.execute(statement)
        except DatabaseError as exc:
            raise SyncError(
                f"Cannot create index {name} on {model._meta.label}: {str(exc).strip()}. "
                "Nothing was changed."
            ) from exc


def _record(cursor: Any, plan: SyncPlan) -> None:
    """Remember what this library manages; unchanged views are not written to at all."""
    rows = ManagedView.objects.using(plan.using)
    for action in plan.of_kind(CREATE, RECREATE, REINDEX, ADOPT):
        assert action.model is not None
        rows.update_or_create(
            view_name=action.view_name,
            defaults={
                "app_label": action.model._meta.app_label,
                "model_name": action.model._meta.model_name,
                "indexes": sorted(action.indexes),
                "index_digest": index_digest(action.indexes),
            },
        )
    gone = [action.view_name for action in plan.of_kind(DROP, FORGET)]
    rows.filter(view_name__in=gone).delete()
    # Also views adopted from django-materialized-view, which we then recorded as ours:
    # its tracking row must say the view is gone, or a rollback to it would misbehave.
    if gone and introspection.relation_oid(cursor, LEGACY_TABLE) is not None:
        cursor.execute(
            f"UPDATE {LEGACY_TABLE} SET deleted = true "  # constant name
            "WHERE NOT deleted AND app || '_' || view_name = ANY(%s)",
            [gone],
        )
