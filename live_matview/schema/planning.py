"""Decide what ``migrate_with_views`` must do: compare each model with the database.

Definitions are compared as PostgreSQL normalises them (``pg_get_viewdef`` of a temporary
probe view over the new query against that of the existing view), so formatting, comments
and Django's SQL style never cause a rebuild, and every real change does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, connections, transaction

from .._compat import savepoint_create
from ..exceptions import LiveMatviewError, SyncError
from ..models import ManagedView
from ..views.declaration import ViewModel
from ..views.graph import DependencyGraph
from ..views.incremental import is_incremental
from ..views.names import RelationName
from ..views.query import describe_source
from . import ddl, incremental, introspection
from .database_graph import build_graph, existing_views, managed_models

PROBE_NAME = "live_matview_probe"
LEGACY_TABLE = "django_materialized_view_materializedviewmigrations"

CREATE, RECREATE, REINDEX, ADOPT, KEEP, DROP, FORGET = (
    "create",
    "recreate",
    "reindex",
    "adopt",
    "keep",
    "drop",
    "forget",
)
CHANGES = (CREATE, RECREATE, REINDEX, ADOPT, DROP, FORGET)


@dataclass
class ViewAction:
    """One step of a plan. ``model`` is ``None`` for views whose model is gone."""

    kind: str
    view_name: str
    reason: str
    model: ViewModel | None = None
    oid: int | None = None
    indexes: dict[str, str] = field(default_factory=dict)
    legacy: bool = False

    def describe(self) -> str:
        label = f" ({self.model._meta.label})" if self.model is not None else ""
        return f"{self.kind:<8} {self.view_name}{label}: {self.reason}"


@dataclass
class SyncPlan:
    using: str
    actions: list[ViewAction]
    graph: DependencyGraph
    capture_changes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[ViewAction]:
        return [action for action in self.actions if action.kind in CHANGES]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes or self.capture_changes)

    def of_kind(self, *kinds: str) -> list[ViewAction]:
        return [action for action in self.actions if action.kind in kinds]

    def describe(self) -> list[str]:
        return [action.describe() for action in self.actions]


def index_digest(statements: dict[str, str]) -> str:
    text = "\n".join(f"{name}\t{statement}" for name, statement in sorted(statements.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def make_plan(using: str, models: list[ViewModel] | None = None) -> SyncPlan:
    """Compare every view model with the database. Must run inside a transaction: the
    probes are created and rolled back in savepoints."""
    connection = connections[using]
    models = managed_models(using) if models is None else models
    with connection.cursor() as cursor:
        oids = existing_views(cursor, connection, models)
        graph = build_graph(cursor, models, oids)
        records = {}
        if introspection.relation_oid(cursor, ManagedView._meta.db_table) is not None:
            # (absent before this library's migrations ran: --plan on a new database)
            records = {row.view_name: row for row in ManagedView.objects.using(using)}
        actions: list[ViewAction] = []
        rebuilt: set[ViewModel] = set()
        for model in graph.order():
            action = _plan_model(
                cursor, connection, model, oids.get(model), graph, rebuilt, records
            )
            if action.kind in (CREATE, RECREATE):
                rebuilt.add(model)
            actions.append(action)
        wanted = {model._meta.db_table for model in models}
        actions.extend(_plan_removals(cursor, connection, records, wanted))
    return SyncPlan(using, actions, graph)


def _plan_model(
    cursor: Any,
    connection: Any,
    model: ViewModel,
    oid: int | None,
    graph: DependencyGraph,
    rebuilt: set[ViewModel],
    records: dict[str, ManagedView],
) -> ViewAction:
    name = model._meta.db_table
    indexes = _declared_indexes(model, connection)
    if oid is None:
        switched = _stored_as_other_kind(cursor, connection, model, records)
        if switched is not None:
            reason = "switches to {} refresh (a rebuild)".format(
                "incremental" if is_incremental(model) else "full"
            )
            return ViewAction(RECREATE, name, reason, model, switched, indexes)
        return ViewAction(CREATE, name, "does not exist", model, None, indexes)
    rebuilt_parents = sorted(parent._meta.label for parent in graph.parents[model] & rebuilt)
    if rebuilt_parents:
        reason = f"reads {', '.join(rebuilt_parents)}, which is rebuilt"
        return ViewAction(RECREATE, name, reason, model, oid, indexes)
    if _probe_definition(cursor, connection, model) != _definition(cursor, connection, model, oid):
        return ViewAction(RECREATE, name, "definition changed", model, oid, indexes)
    present = introspection.index_names(cursor, oid)
    record = records.get(name)
    if record is None:
        missing = sorted(set(indexes) - present)
        reason = "exists with the same definition; taking it over"
        if missing:
            reason += f", adding index {', '.join(missing)}"
        return ViewAction(ADOPT, name, reason, model, oid, indexes)
    if record.index_digest != index_digest(indexes) or not set(indexes) <= present:
        return ViewAction(REINDEX, name, "declared indexes changed", model, oid, indexes)
    return ViewAction(KEEP, name, "unchanged", model, oid, indexes)


def _stored_as_other_kind(
    cursor: Any, connection: Any, model: ViewModel, records: dict[str, ManagedView]
) -> int | None:
    """The oid of this view stored the other way (a materialized view for an incremental
    model, or the reverse) when it is ours to rebuild."""
    name = ddl.relation(model)
    if is_incremental(model):
        if model._meta.db_table not in records:
            return None
        return introspection.matview_oid(cursor, name.quoted(connection))
    return incremental.stored_oid(cursor, connection, name)


def _definition(cursor: Any, connection: Any, model: ViewModel, oid: int) -> str:
    if is_incremental(model):
        return incremental.stored_definition(cursor, connection, ddl.relation(model))
    return introspection.view_definition(cursor, oid)


def _declared_indexes(model: ViewModel, connection: Any) -> dict[str, str]:
    try:
        return ddl.index_statements(model, connection)
    except (LiveMatviewError, LookupError, ValueError) as exc:
        raise SyncError(f"{model._meta.label}: cannot build its indexes: {exc}") from exc


def _probe_definition(cursor: Any, connection: Any, model: ViewModel) -> str:
    try:
        statement = ddl.probe_view(model, connection, PROBE_NAME)
    except LiveMatviewError as exc:
        raise SyncError(str(exc)) from exc
    savepoint = savepoint_create(using=connection.alias)
    try:
        cursor.execute(statement)
        check_columns(cursor, model, f"pg_temp.{PROBE_NAME}")
        cursor.execute("SELECT pg_get_viewdef(%s::regclass)", [f"pg_temp.{PROBE_NAME}"])
        return str(cursor.fetchone()[0])
    except DatabaseError as exc:
        raise SyncError(
            f"{model._meta.label}: its query ({describe_source(model)}) is invalid: "
            f"{str(exc).strip()}"
        ) from exc
    finally:
        transaction.savepoint_rollback(savepoint, using=connection.alias)


def check_columns(cursor: Any, model: ViewModel, relation: str) -> None:
    """The model reads these columns: the query must return every one of them."""
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass "
        "AND attnum > 0 AND NOT attisdropped",
        [relation],
    )
    returned = {row[0] for row in cursor.fetchall()}
    expected = [str(field.column) for field in model._meta.concrete_fields]
    missing = [column for column in expected if column not in returned]
    pk = model._meta.pk
    if pk is not None and pk.auto_created and pk.column in missing:
        raise SyncError(
            f"{model._meta.label} has no field with primary_key=True, so Django gave it an "
            f"'{pk.column}' column, which its query ({describe_source(model)}) does not "
            f"return (it returns {', '.join(sorted(returned))}). Mark the field that "
            "identifies a row with primary_key=True (create_pkey_index indexes that column)."
        )
    if missing:
        raise SyncError(
            f"{model._meta.label}: its query ({describe_source(model)}) returns the columns "
            f"{', '.join(sorted(returned))}, but the model also reads "
            f"{', '.join(missing)}. Rename them in the query (or set db_column on the fields)."
        )


def legacy_view_names(cursor: Any) -> set[str]:
    """Views django-materialized-view created, so that a switch can drop them like ours."""
    if introspection.relation_oid(cursor, LEGACY_TABLE) is None:
        return set()
    cursor.execute(
        f"SELECT app, view_name FROM {LEGACY_TABLE} WHERE NOT deleted"  # constant name
    )
    return {f"{app}_{view}" for app, view in cursor.fetchall()}


def _plan_removals(
    cursor: Any, connection: Any, records: dict[str, ManagedView], wanted: set[str]
) -> Iterable[ViewAction]:
    legacy = legacy_view_names(cursor)
    for name in sorted((set(records) | legacy) - wanted):
        quoted = RelationName.parse(name).quoted(connection)
        oid = introspection.matview_oid(cursor, quoted) or incremental.stored_oid(
            cursor, connection, RelationName.parse(name)
        )
        is_legacy = name not in records
        if oid is not None:
            yield ViewAction(DROP, name, "its model is gone", oid=oid, legacy=is_legacy)
        elif not is_legacy:
            yield ViewAction(FORGET, name, "its model and view are both gone")
