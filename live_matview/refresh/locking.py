"""The refresh's transaction: READ COMMITTED, and the view's advisory lock, waited for
within a bound.

A refresh that runs in a transaction of its own sets READ COMMITTED as its first
statement, whatever the connection's default isolation (``OPTIONS["isolation_level"]``,
``default_transaction_isolation``): under REPEATABLE READ its snapshot would date from
before it waited for the lock, so it would refresh from stale data and fail with a
serialization error on the rows the previous holder wrote. Inside the caller's
``atomic()`` the isolation is the caller's, fixed by its first query.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections, transaction

from .. import conf

SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
LOCK_NOT_AVAILABLE = "55P03"
#: Errors after which the same transaction, run again, can succeed.
RETRYABLE = frozenset({SERIALIZATION_FAILURE, DEADLOCK_DETECTED})


def sqlstate(error: BaseException) -> str | None:
    """PostgreSQL's error code behind a Django ``DatabaseError`` (psycopg 3 or psycopg2)."""
    seen: BaseException | None = error
    while seen is not None:
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if code:
            return str(code)
        seen = seen.__cause__
    return None


def in_callers_transaction(connection: Any) -> bool:
    """Whether ``atomic()`` would only add a savepoint to a transaction someone else runs
    (an ``atomic()`` block, or autocommit turned off): its isolation is fixed, its
    statements cannot be run again, and its writes may have set capture flags."""
    return bool(connection.in_atomic_block or not connection.get_autocommit())


@contextmanager
def own_transaction(alias: str) -> Iterator[Any]:
    """``atomic()`` with a cursor; at READ COMMITTED when it is the outermost transaction."""
    connection = connections[alias]
    outermost = not in_callers_transaction(connection)
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        if outermost:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        yield cursor


@dataclass(frozen=True)
class Lock:
    acquired: bool
    waited: float  # seconds spent getting (or failing to get) the lock
    holder: int | None = None  # pid of the process that kept it, when not acquired


def acquire(
    cursor: Any, quoted_name: str, *, wait: bool = True, max_wait: float | None = None
) -> Lock:
    """Take the view's transaction-scoped advisory lock (safe behind PgBouncer).

    One statement when the lock is free. Busy: ``wait=False`` gives up at once;
    ``max_wait=None`` waits as long as it takes; otherwise the wait ends after
    ``max_wait`` seconds (``lock_timeout``, in a savepoint so that the transaction stays
    usable) and the lock is not acquired.
    """
    namespace = conf.advisory_lock_namespace()
    clock = time.monotonic()
    cursor.execute(
        "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s)), current_setting('lock_timeout')",
        [namespace, quoted_name],
    )
    free, lock_timeout = cursor.fetchone()
    if free:
        return Lock(True, time.monotonic() - clock)
    if not wait:
        return Lock(False, time.monotonic() - clock)
    if max_wait is None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [namespace, quoted_name])
        return Lock(True, time.monotonic() - clock)
    if max_wait > 0:
        try:
            with transaction.atomic(using=cursor.db.alias):
                # lock_timeout = 0 would mean no limit: at least 1 ms.
                milliseconds = f"{max(1, round(max_wait * 1000))}ms"
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [milliseconds])
                cursor.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [namespace, quoted_name]
                )
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
            return Lock(True, time.monotonic() - clock)
        except DatabaseError as exc:
            if sqlstate(exc) != LOCK_NOT_AVAILABLE:
                raise
    waited = time.monotonic() - clock
    return Lock(False, waited, _holder(cursor, namespace, quoted_name))


def _holder(cursor: Any, namespace: int, quoted_name: str) -> int | None:
    """The pid holding the view's lock (two-int advisory locks show as unsigned oids)."""
    cursor.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = (%s::bigint & 4294967295)::oid "
        "AND objid = (hashtext(%s)::bigint & 4294967295)::oid",
        [namespace, quoted_name],
    )
    row = cursor.fetchone()
    return int(row[0]) if row else None
