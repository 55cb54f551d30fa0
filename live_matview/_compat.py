"""Differences between psycopg 2 and psycopg 3, decided once."""

from __future__ import annotations

import select
from typing import Any

from django.db import transaction
from django.db.backends.postgresql.psycopg_any import is_psycopg3, sql

__all__ = [
    "is_psycopg3",
    "read_first_result",
    "runs_statement_strings",
    "savepoint_create",
    "sql",
    "sqlstate",
    "take_notices",
    "wait_for_notification",
]

_client_cursor: Any = None
if is_psycopg3:
    import psycopg

    _client_cursor = psycopg.ClientCursor

# Django 6.1 renamed transaction.savepoint() (the old name warns until Django 7).
savepoint_create = getattr(transaction, "savepoint_create", transaction.savepoint)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, whatever the driver and however Django wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(code, str):
            return code
        current = current.__cause__ or current.__context__
    return None


def wait_for_notification(raw_connection: Any, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for a NOTIFY on a LISTENing driver connection.

    Returns whether one arrived, after consuming every pending one (a burst of
    notifications is one wake-up). Works alike on psycopg 2 and on every psycopg 3.
    """
    if is_psycopg3:
        pgconn = raw_connection.pgconn
        ready, _, _ = select.select([pgconn.socket], [], [], max(0.0, timeout))
        if not ready:
            return False
        pgconn.consume_input()
        arrived = False
        while pgconn.notifies() is not None:
            arrived = True
        return arrived
    ready, _, _ = select.select([raw_connection], [], [], max(0.0, timeout))
    if not ready:
        return False
    raw_connection.poll()
    arrived = bool(raw_connection.notifies)
    raw_connection.notifies.clear()
    return arrived


def runs_statement_strings(raw_cursor: Any) -> bool:
    """Whether a string of several statements with ``%s`` parameters goes to the server as
    one simple query (one round trip, one implicit transaction): always on psycopg 2; on
    psycopg 3 with Django's default cursor, which binds on the client, but not with
    ``server_side_binding`` (the extended protocol takes one statement at a time)."""
    return not is_psycopg3 or isinstance(raw_cursor, _client_cursor)


def read_first_result(raw_cursor: Any) -> tuple[bool, Any]:
    """(True, its first value) of the first result of a string of statements, the cursor
    left on the next result, where the caller's statement expects it. psycopg 3 keeps every
    result and stands on the first; psycopg 2 keeps only the last: (False, None)."""
    if not is_psycopg3:
        return False, None
    row = raw_cursor.fetchone()
    raw_cursor.nextset()
    return True, None if row is None else row[0]


def take_notices(raw_connection: Any, marker: str) -> list[str]:
    """The notices (psycopg 2 collects them on the connection) that contain ``marker``,
    removed from the list; the others stay for whoever reads them."""
    notices = getattr(raw_connection, "notices", None)
    if not notices:
        return []
    ours = [notice for notice in notices if marker in notice]
    for notice in ours:  # a list by default; a deque where the user chose one
        notices.remove(notice)
    return ours
