"""The durable marks Python writes (signals mode, or a table without the trigger).

Shared by the statement wrapper (writes inside a transaction) and the autocommit path.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from .source_map import source_map

#: One statement: the marks, and the wake-up the trigger would have sent; their ids back.
MARKS = (
    "WITH marked AS (INSERT INTO live_matview_dirtymark (view_name, source, marked_at) "
    "SELECT name, %s, now() FROM unnest(%s::text[]) AS name RETURNING id) "
    "SELECT (SELECT array_agg(id) FROM marked), "
    "(SELECT pg_notify('live_matview', '') FROM (SELECT 1 FROM marked LIMIT 1) AS one)"
)


def mark_rows(connection: Any, tables: list[str]) -> tuple[str, list[str]] | None:
    """(source, view names) of the marks a write to ``tables`` needs; None if no view reads
    them directly."""
    if not tables:
        return None
    views = source_map(connection.alias).readers_of(tables)
    if not views:
        return None
    return ",".join(sorted(tables)), sorted(view._meta.db_table for view in views)


def insert_marks(connection: Any, tables: list[str], *, savepoint: bool = True) -> list[int]:
    """The durable marks the trigger would have written, in the writer's transaction."""
    rows = mark_rows(connection, tables)
    if rows is None:
        return []
    if not savepoint:
        with connection.cursor() as cursor:
            cursor.execute(MARKS, list(rows))
            return list(cursor.fetchone()[0] or ())
    # A savepoint: should this fail, the writer's transaction must not be left aborted.
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(MARKS, list(rows))
        return list(cursor.fetchone()[0] or ())


def delete_marks(connection: Any, ids: list[int]) -> None:
    """Take back the marks of a write that changed nothing (rare: an UPDATE or DELETE that
    matched no row)."""
    if ids:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM live_matview_dirtymark WHERE id = ANY(%s)", [ids])


def changed_nothing(cursor: Any, sql: str, many: bool) -> bool:
    """An UPDATE or DELETE that matched no row (or an INSERT that conflicted) changed
    nothing: no refresh for it. TRUNCATE reports no count, so it always counts."""
    if many or cursor is None or sql.lstrip()[:8].upper() == "TRUNCATE":
        return False
    return getattr(cursor, "rowcount", -1) == 0
