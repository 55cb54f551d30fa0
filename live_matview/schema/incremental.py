"""Where an incremental view lives: a table that only this library writes, plus a plain
view holding its query.

PostgreSQL cannot change a materialized view's rows, so an incremental view is a table
(the model's ``db_table``) whose rows are replaced by key. Its query is kept as a plain
view beside it, ``<table>_lmv_query``: refreshes select from it (PostgreSQL pushes the key
condition into it), the sync compares its normalised definition as it does a materialized
view's, and ``pg_depend`` records what it reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._compat import sql
from ..views.declaration import ViewModel
from ..views.incremental import is_incremental
from ..views.names import RelationName, as_string, derived_name
from ..views.query import view_sql
from . import introspection

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

QUERY_SUFFIX = "lmv_query"


def table(model: ViewModel) -> RelationName:
    return RelationName.parse(model._meta.db_table)


def query_view(name: RelationName) -> RelationName:
    """The plain view that holds the query of the incremental view stored in ``name``."""
    return RelationName(derived_name(name.name, QUERY_SUFFIX), name.schema)


def stored_oid(cursor: Any, connection: Any, name: RelationName) -> int | None:
    """The table's oid if ``name`` is an incremental view's table (a table with its query
    view beside it); ``None`` otherwise, so a user's own table is never taken for ours."""
    oid = introspection.relation_oid(cursor, name.quoted(connection))
    if oid is None or introspection.relkind(cursor, oid) != "r":
        return None
    query_oid = introspection.relation_oid(cursor, query_view(name).quoted(connection))
    if query_oid is None or introspection.relkind(cursor, query_oid) != "v":
        return None
    return oid


def view_oid(cursor: Any, connection: Any, model: ViewModel) -> int | None:
    """The oid of the relation that holds ``model``'s rows, of the kind it declares."""
    if is_incremental(model):
        return stored_oid(cursor, connection, table(model))
    return introspection.matview_oid(cursor, table(model).quoted(connection))


def stored_definition(cursor: Any, connection: Any, name: RelationName) -> str:
    query_oid = introspection.relation_oid(cursor, query_view(name).quoted(connection))
    assert query_oid is not None
    return introspection.view_definition(cursor, query_oid)


def create_statements(model: ViewModel, connection: BaseDatabaseWrapper) -> list[str]:
    """Query view, table filled from it, primary key (which also proves the key unique),
    and statistics, so the first refresh can judge the share of rows a change touches."""
    name = table(model)
    query = query_view(name)
    head = as_string(sql.SQL("CREATE VIEW {} AS ").format(query.identifier()), connection)
    pkey = derived_name(name.name, "pkey")
    composed = [
        sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
            name.identifier(), query.identifier()
        ),
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
            name.identifier(), sql.Identifier(pkey), sql.Identifier(model._meta.pk.column)
        ),
        sql.SQL("ANALYZE {}").format(name.identifier()),
    ]
    # On its own line: a SQL file may end with a -- comment.
    return [head + view_sql(model, connection) + "\n"] + [
        as_string(statement, connection) for statement in composed
    ]


def drop_statements(cursor: Any, connection: Any, oid: int) -> list[str]:
    """Drop the table of an incremental view and its query view."""
    cursor.execute(
        "SELECT n.nspname, c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s",
        [oid],
    )
    schema, relname = cursor.fetchone()
    name = RelationName(relname, schema)
    return [
        as_string(sql.SQL("DROP TABLE {}").format(name.identifier()), connection),
        as_string(sql.SQL("DROP VIEW {}").format(query_view(name).identifier()), connection),
    ]


def rebuild_statements(model: ViewModel, connection: Any) -> list[str]:
    """A full rebuild that readers do not wait for: under MVCC they keep seeing the old
    rows until the rebuild commits (TRUNCATE would lock them out, a swap would break the
    views that read this table)."""
    name = table(model)
    return [
        as_string(sql.SQL("DELETE FROM {}").format(name.identifier()), connection),
        as_string(
            sql.SQL("INSERT INTO {} SELECT * FROM {}").format(
                name.identifier(), query_view(name).identifier()
            ),
            connection,
        ),
    ]


def by_key_composed(
    model: ViewModel,
    stored: RelationName,
    query: RelationName,
    columns: list[str],
    keys: Any,
    *,
    one: bool = False,
) -> Any:
    """Recompute the rows of ``keys`` (an SQL expression: an array of the key's type, or
    with ``one`` a single value) and replace them in one statement that returns how many
    rows it changed.

    Keys whose query yields no row lose theirs; the others are upserted, and a row whose
    values did not change is left alone (``*=`` compares the stored images, so any column
    type works, json included).
    """
    pk = sql.Identifier(model._meta.pk.column)
    others = [sql.Identifier(c) for c in columns if c != model._meta.pk.column]
    if others:
        on_conflict = sql.SQL("DO UPDATE SET ({}) = ROW({}) WHERE NOT (stored *= EXCLUDED)").format(
            sql.SQL(", ").join(others),
            sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(c) for c in others),
        )
    else:
        on_conflict = sql.SQL("DO NOTHING")
    match = sql.SQL("= {}" if one else "= ANY({})").format(keys)
    return sql.SQL(
        "WITH fresh AS MATERIALIZED (SELECT * FROM {query} WHERE {pk} {match}), "
        "gone AS (DELETE FROM {table} AS stored WHERE stored.{pk} {match} "
        "AND NOT EXISTS (SELECT 1 FROM fresh WHERE fresh.{pk} = stored.{pk}) RETURNING 1), "
        "put AS (INSERT INTO {table} AS stored SELECT * FROM fresh "
        "ON CONFLICT ({pk}) {on_conflict} RETURNING 1) "
        "SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM put)"
    ).format(
        query=query.identifier(),
        table=stored.identifier(),
        pk=pk,
        match=match,
        on_conflict=on_conflict,
    )


def table_shape(cursor: Any, oid: int, key_column: str) -> tuple[list[str], str, float]:
    """(columns in order, the key column's type, estimated rows; -1 when never analysed)."""
    cursor.execute(
        "SELECT array_agg(a.attname::text ORDER BY a.attnum), "
        "max(format_type(a.atttypid, a.atttypmod)) FILTER (WHERE a.attname = %s), "
        "(SELECT reltuples FROM pg_class WHERE oid = %s) "
        "FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped",
        [key_column, oid, oid],
    )
    columns, key_type, rows = cursor.fetchone()
    return list(columns), str(key_type), float(rows if rows is not None else -1)
