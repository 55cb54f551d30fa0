"""Statements that create, drop, index and refresh views, identifiers quoted by the driver."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import UniqueConstraint

from .._compat import sql
from ..views.declaration import ViewModel
from ..views.incremental import is_incremental
from ..views.names import RelationName, as_string, derived_name
from ..views.query import view_sql

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


def relation(model: ViewModel) -> RelationName:
    return RelationName.parse(model._meta.db_table)


def create_view(
    model: ViewModel, connection: BaseDatabaseWrapper, *, with_data: bool = True
) -> str:
    head = sql.SQL("CREATE MATERIALIZED VIEW {} AS ").format(relation(model).identifier())
    # On its own line: a SQL file may end with a -- comment.
    tail = "\nWITH DATA" if with_data else "\nWITH NO DATA"
    return as_string(head, connection) + view_sql(model, connection) + tail


def probe_view(model: ViewModel, connection: BaseDatabaseWrapper, probe_name: str) -> str:
    """A temporary plain view over the same query: PostgreSQL normalises its definition
    exactly as it does the materialized view's, without running the query."""
    head = sql.SQL("CREATE TEMPORARY VIEW {} AS ").format(sql.Identifier(probe_name))
    return as_string(head, connection) + view_sql(model, connection)


def drop_view(quoted_name: str) -> str:
    """``quoted_name`` is the driver-quoted (or regclass) text of an existing relation."""
    return f"DROP MATERIALIZED VIEW {quoted_name}"


def refresh_view(model: ViewModel, connection: BaseDatabaseWrapper, *, concurrently: bool) -> str:
    template = (
        "REFRESH MATERIALIZED VIEW CONCURRENTLY {}"
        if concurrently
        else ("REFRESH MATERIALIZED VIEW {}")
    )
    return as_string(sql.SQL(template).format(relation(model).identifier()), connection)


def pkey_index_name(model: ViewModel) -> str:
    """``<view>_pkey``, the name django-materialized-view gave this index."""
    return derived_name(relation(model).name, "pkey")


def index_statements(model: ViewModel, connection: BaseDatabaseWrapper) -> dict[str, str]:
    """Every index the model declares, by name: the pk index, ``Meta.indexes`` and the
    ``UniqueConstraint``s of ``Meta.constraints`` (as unique indexes, the only kind a
    materialized view can have)."""
    statements: dict[str, str] = {}
    table = relation(model)
    if model.create_pkey_index and not is_incremental(model):  # its primary key is the index
        name = pkey_index_name(model)
        statements[name] = _unique_index(connection, name, table, [model._meta.pk.column])
    for constraint in model._meta.constraints:
        if isinstance(constraint, UniqueConstraint) and (
            constraint.condition is not None
            or getattr(constraint, "include", None)
            or getattr(constraint, "opclasses", None)
            or constraint.expressions
        ):
            raise ValueError(
                f"{model._meta.label}: UniqueConstraint {constraint.name!r} has a condition, "
                "include, opclasses or expressions, which this library does not build on "
                "views; declare it as a plain UniqueConstraint(fields=...) or in Meta.indexes."
            )
        if isinstance(constraint, UniqueConstraint) and constraint.fields:
            columns = [_column(model, field) for field in constraint.fields]
            statements[constraint.name] = _unique_index(connection, constraint.name, table, columns)
    editor = connection.schema_editor(collect_sql=True, atomic=False)
    for index in model._meta.indexes:
        if not index.name:
            index.set_name_with_model(model)
        statements[index.name] = str(index.create_sql(model, editor))
    return statements


def _column(model: ViewModel, field_name: str) -> str:
    field = model._meta.get_field(field_name)
    column = getattr(field, "column", None)
    if not isinstance(column, str):
        raise ValueError(f"{model._meta.label}.{field_name} has no column to index.")
    return column


def _unique_index(
    connection: BaseDatabaseWrapper, name: str, table: RelationName, columns: list[str]
) -> str:
    composed: Any = sql.SQL("CREATE UNIQUE INDEX {} ON {} ({})").format(
        sql.Identifier(name),
        table.identifier(),
        sql.SQL(", ").join(sql.Identifier(column) for column in columns),
    )
    return as_string(composed, connection)


def drop_index(table: RelationName, name: str, connection: BaseDatabaseWrapper) -> str:
    identifier = (
        sql.Identifier(name) if table.schema is None else sql.Identifier(table.schema, name)
    )
    return as_string(sql.SQL("DROP INDEX IF EXISTS {}").format(identifier), connection)
