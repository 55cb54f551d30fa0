"""The sync lock: one view sync (or ``migrate_with_views`` run) at a time per database.

Only transaction-scoped advisory locks are taken. A session lock would stay on whichever
server connection a pooler such as PgBouncer (transaction mode) happened to hand out, so
the sync's own transaction, on another server connection, would wait for it forever, and
the lock would outlive the command. A transaction lock goes when its transaction ends,
whatever the pooler does. ``migrate_with_views`` holds it for its whole run in a
transaction of a connection of its own (``holding_sync_lock``), and the sync inside knows
not to wait for its own process.

Waits are bounded by ``LIVE_MATVIEW_SYNC_LOCK_TIMEOUT``; the error names the holder as
``pg_stat_activity`` shows it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connections

from .. import conf
from .._compat import sqlstate
from ..exceptions import SyncError

logger = logging.getLogger("live_matview.migrations")

SYNC_LOCK_KEY = 1  # second key of the sync lock, in the library's lock namespace
LOCK_NOT_AVAILABLE = "55P03"


class _Held(threading.local):
    def __init__(self) -> None:
        self.aliases: set[str] = set()


_held = _Held()


def _keys() -> list[int]:
    return [conf.advisory_lock_namespace() + 1, SYNC_LOCK_KEY]


def lock_sync(connection: Any) -> None:
    """Take the sync lock in the connection's current transaction (it is released when
    that transaction ends). Does nothing when this thread holds it already through
    ``holding_sync_lock``; raises ``SyncError`` naming the holder after the timeout."""
    if connection.alias in _held.aliases:
        return
    timeout = conf.sync_lock_timeout()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", _keys())
        if cursor.fetchone()[0]:
            return
        holder = describe_holders(cursor)
        logger.warning("Waiting up to %.0f s for the view-sync lock, held by %s.", timeout, holder)
        cursor.execute("SELECT current_setting('lock_timeout')")
        previous = cursor.fetchone()[0]
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, true)", [f"{max(1, int(timeout * 1000))}ms"]
        )
        try:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", _keys())
        except DatabaseError as exc:
            if sqlstate(exc) != LOCK_NOT_AVAILABLE:
                raise
            raise SyncError(
                f"Another view sync still holds the lock after {timeout:g} s "
                f"(LIVE_MATVIEW_SYNC_LOCK_TIMEOUT): {describe_holders(cursor, after_error=True)}"
                ". Wait for it to finish; if that process is gone but its connection stayed "
                "open, end it with SELECT pg_terminate_backend(<pid>). Nothing was changed."
            ) from exc
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def describe_holders(cursor: Any, *, after_error: bool = False) -> str:
    """Who holds the sync lock: pid, application_name, client, state, transaction and
    query start, as ``pg_stat_activity`` has them. After an error the transaction is
    aborted, so a fresh connection asks instead."""
    query = """
        SELECT a.pid, a.application_name, a.client_addr, a.state, a.xact_start,
               a.query_start, left(a.query, 120)
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = (%s::bigint & 4294967295)::oid AND l.objid = %s::oid
        ORDER BY a.pid
    """
    if after_error:
        other = connections.create_connection(cursor.db.alias)
        try:
            with other.cursor() as fresh:
                fresh.execute(query, _keys())
                rows = fresh.fetchall()
        finally:
            other.close()
    else:
        cursor.execute(query, _keys())
        rows = cursor.fetchall()
    if not rows:
        return "a process that has just released it"
    return "; ".join(
        f"pid {pid} (application_name {app!r}, client {client or 'local'}, {state}, "
        f"transaction since {xact}, last query at {started}: {text!r})"
        for pid, app, client, state, xact, started, text in rows
    )


@contextmanager
def holding_sync_lock(using: str) -> Iterator[None]:
    """Hold the sync lock while the block runs (a whole ``migrate_with_views``), in an open
    transaction of a separate connection: migrations commit on their own, and the lock
    must not end with one of them. Closing that connection, or the process dying, ends
    the transaction and so the lock."""
    holder = connections.create_connection(using)
    try:
        holder.set_autocommit(False)
        lock_sync(holder)
        _held.aliases.add(using)
        yield
    finally:
        _held.aliases.discard(using)
        try:
            holder.rollback()
        except DatabaseError as exc:  # the connection was lost, and the lock with it
            logger.warning("The view-sync lock's connection was lost: %s", exc)
        finally:
            holder.close()
