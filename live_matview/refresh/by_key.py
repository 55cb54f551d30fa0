"""Refresh an incremental view by key: recompute only the rows of the keys writes touched.

All of it runs on the server in one call of the view's refresh function
(``schema/incremental_refresh.py``, written by the sync), in one transaction under the
view's advisory lock (the lock a full refresh takes too, so refreshes of one view never
overlap: no deadlock, no unique violation, no lost change):

1. the lock, in its own statement: a refresh that held it has committed before the next
   statement takes its snapshot;
2. the key marks are taken (``DELETE ... RETURNING``): every write whose mark is taken
   had committed before this statement's snapshot;
3. the rows of those keys are recomputed from the view's query and replaced, in one
   later statement, whose snapshot therefore sees every one of those writes. A write that
   commits after step 2 left its mark in place, so it leads to another refresh;
4. the views built on this one are marked (when a row changed; not one the pass has
   refreshed already that depends on this one, as in a full refresh), the log row
   written and the view's state updated.

A failure rolls all of it back, marks included, so the view is retried; it is then
logged here, in a transaction of its own. Readers see the old rows or the new, never a
gap (one commit, MVCC).

A full mark (TRUNCATE, a write only Django saw, the fallback of a key trigger that could
not trace a row) or more keys than ``LIVE_MATVIEW_INCREMENTAL_MAX_SHARE`` of the view's
rows make it a full rebuild instead, which readers do not wait for either.

Why one call: after an autocommit ``save()`` in ``on_commit`` mode the writer waits for
this refresh. Sent statement by statement it was ~14 round trips and a second
synchronous WAL flush, ~19x the save itself at any size; one call, committed without
waiting for the flush (safe: see the function's module), is what makes the writer's wait
close to that of a save without the library.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from .. import conf
from .._compat import sqlstate
from ..capture.source_map import source_map
from ..exceptions import RefreshError
from ..models import MaterializedViewRefreshLog
from ..schema.incremental_refresh import function_name
from ..signals import refresh_failed, view_refreshed
from ..views.declaration import ViewModel
from .log import record_outcome
from .outcome import Skipped

logger = logging.getLogger("live_matview.refresh")

FULL, BY_KEY = "full", "by_key"
#: Below this many keys a by-key refresh is cheap whatever the share of the view.
MIN_KEYS_FOR_REBUILD = 100
UNDEFINED_TABLE, UNDEFINED_FUNCTION, LOCK_NOT_AVAILABLE = "42P01", "42883", "55P03"


def refresh_by_key(
    model: ViewModel,
    *,
    using: str | None = None,
    trigger: str = "on_commit",
    wait: bool = True,
    only_if_marked: bool = True,
    full: bool = False,
    max_wait: float | None = None,
    refreshed: Collection[ViewModel] = (),
) -> MaterializedViewRefreshLog | Skipped:
    """Bring an incremental view up to date with its marks; the log row, or why not.

    ``full=True`` rebuilds it whole (``refresh()``, ``refresh_views``): a whole-view mark
    is written first, in the same transaction, and the function then takes the rebuild.
    ``max_wait`` bounds the wait for locks in a transaction of its own (an on-commit
    refresh): past it the attempt rolls back, its marks stay, a log row says so, and the
    view is returned as ``Skipped.HANDED_OFF`` for the background refresher.
    ``refreshed`` are the views the current pass has refreshed already: not marked again
    (see ``SourceMap.children_to_mark``).
    Raises ``RefreshError`` on failure (logged first), like ``full.refresh_view``.
    """
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    started_at, clock = timezone.now(), time.monotonic()
    try:
        row = _call(
            model,
            connection,
            wait=wait,
            only_if_marked=only_if_marked,
            trigger=trigger,
            full=full,
            max_wait=max_wait,
            refreshed=refreshed,
        )
    except DatabaseError as exc:
        if max_wait is not None and sqlstate(exc) == LOCK_NOT_AVAILABLE:
            _log_hand_off(model, alias, trigger, started_at, time.monotonic() - clock)
            return Skipped.HANDED_OFF
        raise _failed(model, alias, exc, started_at, time.monotonic() - clock, trigger) from exc
    outcome, kind, reason, keys, log_id, started, ended, state_found = row
    if outcome == "busy":
        return Skipped.BUSY
    if outcome == "clean":
        return Skipped.CLEAN
    log = MaterializedViewRefreshLog(
        id=log_id,
        view_name=model._meta.db_table,
        database=alias,
        started_at=started,
        updated_at=ended,
        duration=ended - started,
        failed=False,
        concurrently=None,
        reason=reason,
        trigger=trigger,
        kind=kind,
        keys=keys if kind == BY_KEY else None,
        error="",
    )
    log._state.adding, log._state.db = False, alias
    if not state_found:  # the sync records every view; a row deleted since is made again
        record_outcome(model, alias, log)
    logger.info("Refreshed %s %s (%s)", model._meta.label, kind.replace("_", " "), reason)
    view_refreshed.send(sender=model, log=log, using=alias)
    return log


def _call(
    model: ViewModel,
    connection: Any,
    *,
    wait: bool,
    only_if_marked: bool,
    trigger: str,
    full: bool = False,
    max_wait: float | None = None,
    refreshed: Collection[ViewModel] = (),
) -> tuple[Any, ...]:
    """One call of the view's refresh function: its own transaction in autocommit (one
    round trip), else a savepoint of the caller's transaction (or, for a full rebuild,
    a transaction that first writes the whole-view mark).

    In its own transaction the call is sent with its values quoted by the driver, after
    ``SET TRANSACTION ISOLATION LEVEL READ COMMITTED`` (each statement of the function then
    sees what committed before it, the previous lock holder's writes too) and, with
    ``max_wait``, a ``SET LOCAL lock_timeout``: one string, one implicit transaction."""
    own = connection.get_autocommit() and not connection.in_atomic_block and not full
    children = source_map(connection.alias).children_to_mark(model, refreshed)
    params = [
        wait,
        only_if_marked,
        conf.incremental_max_share(),
        MIN_KEYS_FOR_REBUILD,
        conf.advisory_lock_namespace(),
        children,
        connection.alias,
        trigger,
        own,
    ]
    statement = (
        f"SELECT * FROM {function_name(model).quoted(connection)}"
        "(%s, %s, %s, %s, %s, %s::text[], %s, %s, %s)"
    )
    if own:
        prefix = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; "
        if wait and max_wait is not None:
            prefix += f"SET LOCAL lock_timeout = '{max(1, round(max_wait * 1000))}ms'; "
        with connection.cursor() as cursor:
            # No parameters: psycopg 3 then sends the string by the simple protocol, which
            # allows several statements; its cursor starts at the first result (a SET's).
            cursor.execute(prefix + str(connection.ops.compose_sql(statement, params)))
            while cursor.description is None and cursor.nextset():
                pass
            return tuple(cursor.fetchone())
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if full:
            cursor.execute(
                "INSERT INTO live_matview_dirtymark (view_name, source, marked_at) "
                "VALUES (%s, %s, now())",
                [model._meta.db_table, f"{trigger} refresh"],
            )
        cursor.execute(statement, params)
        return tuple(cursor.fetchone())


def _log_hand_off(
    model: ViewModel, alias: str, trigger: str, started_at: Any, waited: float
) -> None:
    """The attempt waited as long as allowed behind another refresh and rolled back."""
    log = MaterializedViewRefreshLog.objects.using(alias).create(
        view_name=model._meta.db_table,
        database=alias,
        started_at=started_at,
        lock_wait=timedelta(seconds=waited),
        duration=None,
        failed=False,
        concurrently=None,
        reason=f"waited {waited:.1f}s for a lock: handed to the background refresher",
        trigger=trigger,
        kind=BY_KEY,
        error="",
    )
    logger.info("%s: %s", model._meta.label, log.reason)


def _failed(
    model: ViewModel,
    alias: str,
    exc: DatabaseError,
    started_at: Any,
    seconds: float,
    trigger: str,
) -> RefreshError:
    """Log a failed refresh (its marks are back), count it for back-off; the error to raise."""
    name = model._meta.db_table
    error: BaseException = exc
    if sqlstate(exc) in (UNDEFINED_TABLE, UNDEFINED_FUNCTION):
        error = RefreshError(
            f"{model._meta.label}: its table {name} or its refresh function does not exist "
            f"({str(exc).strip().splitlines()[0]}); run ./manage.py migrate_with_views.",
            view_name=name,
        )
    with transaction.atomic(using=alias):
        log = MaterializedViewRefreshLog.objects.using(alias).create(
            view_name=name,
            database=alias,
            started_at=started_at,
            duration=timedelta(seconds=seconds),
            failed=True,
            concurrently=None,
            reason="",
            trigger=trigger,
            kind=BY_KEY,
            error=str(error).strip(),
        )
        record_outcome(model, alias, log)
    logger.error("Refresh of %s failed: %s", model._meta.label, log.error)
    refresh_failed.send(sender=model, log=log, error=error, using=alias)
    if isinstance(error, RefreshError):
        error.log_id = log.pk
        return error
    return RefreshError(
        f"Refreshing {model._meta.label} failed: {log.error}", view_name=name, log_id=log.pk
    )
