"""How many SQL statements an operation sends, so a table can say why it costs what it costs.

The client count comes from an execute wrapper on this process's connection: every
statement Django sends, the library's own included. Where the server has
``pg_stat_statements`` loaded (``shared_preload_libraries``), the server count is added:
with ``track = all`` it also counts the statements run inside trigger functions. The
counted run is an extra one, never a timed one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connection, transaction

_server_counts: bool | None = None  # unknown until first tried


def _server_available() -> bool:
    global _server_counts
    if _server_counts is None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                cursor.execute("SELECT count(*) FROM pg_stat_statements")
            _server_counts = True
        except DatabaseError:  # not installed, or not in shared_preload_libraries
            _server_counts = False
    return _server_counts


def _server_calls() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = current_database() AND s.query NOT ILIKE '%pg_stat_statements%'"
        )
        return int(cursor.fetchone()[0])


def count_statements(run: Callable[[], Any]) -> dict[str, int | None]:
    """Run ``run()`` once and return the statements it sent (and the server ran)."""
    connection.ensure_connection()
    sent = 0

    def counter(execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
        nonlocal sent
        sent += 1
        return execute(sql, params, many, context)

    server = _server_available()
    if server:
        with connection.cursor() as cursor:
            cursor.execute("SET pg_stat_statements.track = 'all'")
            cursor.execute("SELECT pg_stat_statements_reset()")
        before = _server_calls()
    with connection.execute_wrapper(counter):
        run()
    return {"client": sent, "server": _server_calls() - before if server else None}
