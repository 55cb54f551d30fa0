"""Differences between psycopg 2 and psycopg 3, decided once."""

from __future__ import annotations

import select
from typing import Any

from django.db import transaction
from django.db.backends.postgresql.psycopg_any import is_psycopg3, sql

__all__ = ["is_psycopg3", "savepoint_create", "sql", "sqlstate", "wait_for_notification"]

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
