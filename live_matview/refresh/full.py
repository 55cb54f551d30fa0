"""Refresh one view: take its lock, choose CONCURRENTLY or plain, run it, log it, signal it."""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from ..capture.source_map import source_map
from ..capture.statements import marks_covered
from ..exceptions import RefreshError
from ..models import MaterializedViewRefreshLog
from ..schema import ddl, incremental, introspection
from ..schema.database_graph import database_graph
from ..signals import refresh_failed, view_refreshed
from ..views.declaration import ViewModel
from ..views.incremental import is_incremental
from .locking import RETRYABLE, acquire, in_callers_transaction, own_transaction, sqlstate
from .log import record_outcome, write_log

logger = logging.getLogger("live_matview.refresh")


class Skipped(enum.Enum):
    """Why ``refresh_view`` did not refresh."""

    BUSY = "another process holds the view's lock"
    HANDED_OFF = "waited for the lock as long as allowed: the caller hands the view on"
    CLEAN = "no marks left: a refresh after the write already covered it"


@dataclass(frozen=True)
class RefreshMode:
    concurrently: bool
    reason: str


REBUILD_REASON = "incremental view rebuilt by DELETE and INSERT: readers keep the old rows"


def choose_mode(model: ViewModel, cursor: Any, oid: int, requested: bool | None) -> RefreshMode:
    """CONCURRENTLY keeps readers going but needs a populated view with a unique index."""
    if is_incremental(model):
        return RefreshMode(False, REBUILD_REASON)
    if requested is None:
        requested = model.refresh_concurrently
    if not introspection.is_populated(cursor, oid):
        return RefreshMode(False, "not populated yet, so CONCURRENTLY is impossible")
    if requested is False:
        return RefreshMode(False, "plain refresh requested")
    if requested is True:
        return RefreshMode(True, "CONCURRENTLY requested")
    if introspection.has_usable_unique_index(cursor, oid):
        return RefreshMode(True, "populated, with a unique index")
    return RefreshMode(False, "no unique index usable by CONCURRENTLY")


def lock_view(cursor: Any, quoted_name: str, *, wait: bool = True) -> bool:
    """Take the view's transaction-scoped advisory lock (safe behind PgBouncer)."""
    return acquire(cursor, quoted_name, wait=wait).acquired


def has_marks(cursor: Any, view_name: str) -> bool:
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM live_matview_dirtymark WHERE view_name = %s)", [view_name]
    )
    return bool(cursor.fetchone()[0])


#: Attempts of a refresh in its own transaction that hits a serialization failure or a
#: deadlock (a caller's transaction cannot be run again, so inside one: a single attempt).
ATTEMPTS = 3


@dataclass
class _Attempt:
    """What one attempt got to: filled in as it goes, so a failure can be logged honestly."""

    started_at: Any
    clock: float = 0.0  # time.monotonic() at the start
    lock_wait: float | None = None
    duration: float | None = None
    mode: RefreshMode | None = None


def refresh_view(
    model: ViewModel,
    *,
    using: str | None = None,
    concurrently: bool | None = None,
    trigger: str = "manual",
    wait: bool = True,
    only_if_marked: bool = False,
    max_wait: float | None = None,
    refreshed: Collection[ViewModel] = (),
) -> MaterializedViewRefreshLog | Skipped:
    """Refresh ``model`` now and return its log row; raise ``RefreshError`` on failure.

    The view's marks are deleted and the REFRESH run in one savepoint: a failure restores
    the marks (so the view stays dirty and is retried) and can still be written to the
    log inside the caller's ``atomic()``. Marks of writes that commit while the refresh
    runs are not visible to its DELETE, so they lead to another refresh. Every attempt
    writes a log row, also one that failed on the lock or while recording its outcome.

    With ``wait=False`` a view another process is refreshing is left to it
    (``Skipped.BUSY``); with ``max_wait`` it is waited for that many seconds at most
    (``Skipped.HANDED_OFF``: the caller hands it on). With ``only_if_marked=True`` a view
    without marks is skipped (``Skipped.CLEAN``): a refresh that started after the
    caller's commit has consumed them, and so covered its write. ``refreshed`` are the
    views the current pass has refreshed already: they are not marked again (a cycle).
    """
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    nested = in_callers_transaction(connection)
    attempts = 1 if nested else ATTEMPTS
    number = 0
    while True:
        number += 1
        attempt = _Attempt(started_at=timezone.now(), clock=time.monotonic())
        try:
            outcome = _refresh_once(
                model,
                alias,
                attempt,
                concurrently=concurrently,
                trigger=trigger,
                wait=wait,
                max_wait=max_wait,
                only_if_marked=only_if_marked,
                refreshed=refreshed,
                retry=number < attempts,
            )
        except DatabaseError as exc:
            if number < attempts and sqlstate(exc) in RETRYABLE:
                logger.info("Refresh of %s hit %s; trying again", model._meta.label, exc)
                continue
            _refresh_failed(model, alias, _log_failure(model, alias, attempt, trigger, exc), exc)
        break
    if isinstance(outcome, Skipped):
        return outcome
    log, error = outcome
    if error is not None:
        _refresh_failed(model, alias, log, error)
    if nested:
        marks_covered(connection)
    logger.info(
        "Refreshed %s %s in %.3fs (%s)",
        model._meta.label,
        "concurrently" if log.concurrently else "plainly",
        log.duration.total_seconds() if log.duration else 0.0,
        log.reason,
    )
    view_refreshed.send(sender=model, log=log, using=alias)
    return log


def _refresh_once(
    model: ViewModel,
    alias: str,
    attempt: _Attempt,
    *,
    concurrently: bool | None,
    trigger: str,
    wait: bool,
    max_wait: float | None,
    only_if_marked: bool,
    refreshed: Collection[ViewModel],
    retry: bool,
) -> tuple[MaterializedViewRefreshLog, BaseException | None] | Skipped:
    connection = connections[alias]
    nested = in_callers_transaction(connection)
    quoted = ddl.relation(model).quoted(connection)
    error: BaseException | None = None
    with own_transaction(alias) as cursor:
        lock = acquire(cursor, quoted, wait=wait, max_wait=max_wait)
        attempt.lock_wait = lock.waited
        if not lock.acquired:
            if not wait:
                return Skipped.BUSY
            _log_hand_off(model, alias, attempt, trigger, lock)
            return Skipped.HANDED_OFF
        if only_if_marked and not has_marks(cursor, model._meta.db_table):
            return Skipped.CLEAN
        clock = time.monotonic()
        oid = incremental.view_oid(cursor, connection, model)
        problem = database_graph(alias).broken.get(model)
        if problem is not None:
            # The stored definition would still refresh, but it may no longer be what the
            # code declares: fail, so the log and the retries show it until it is fixed.
            error = RefreshError(
                f"{problem}. Fix it; ./manage.py check shows it too.",
                view_name=model._meta.db_table,
            )
        elif oid is None:
            error = RefreshError(
                f"{model._meta.label}: materialized view {quoted} does not exist; "
                "run ./manage.py migrate_with_views.",
                view_name=model._meta.db_table,
            )
        else:
            attempt.mode = choose_mode(model, cursor, oid, concurrently)
            try:
                with transaction.atomic(using=alias):
                    _delete_marks(cursor, model, nested=nested)
                    for statement, params in _refresh_statements(model, connection, attempt.mode):
                        cursor.execute(statement, params)
                    _mark_dependents(cursor, model, alias, refreshed)
            except DatabaseError as exc:
                if retry and sqlstate(exc) in RETRYABLE:
                    raise  # the whole transaction runs again
                error = exc
        attempt.duration = time.monotonic() - clock
        log = write_log(
            model,
            alias,
            started_at=attempt.started_at,
            lock_wait=timedelta(seconds=attempt.lock_wait),
            duration=timedelta(seconds=attempt.duration),
            failed=error is not None,
            concurrently=attempt.mode.concurrently if attempt.mode else None,
            reason=attempt.mode.reason if attempt.mode else "",
            trigger=trigger,
            error="" if error is None else str(error).strip(),
        )
        record_outcome(model, alias, log)
    return log, error


def _delete_marks(cursor: Any, model: ViewModel, *, nested: bool) -> None:
    """Delete the view's marks. Inside the writer's transaction, its marks are among them:
    the capture trigger's per-transaction flags of the view's sources are reset too, so the
    transaction's next write to them marks the view again."""
    name = model._meta.db_table
    if not nested:
        cursor.execute("DELETE FROM live_matview_dirtymark WHERE view_name = %s", [name])
        return
    cursor.execute(
        "WITH covered AS (DELETE FROM live_matview_dirtymark WHERE view_name = %s) "
        "SELECT count(set_config('live_matview.m' || relid, '', true)) "
        "FROM live_matview_source WHERE view_name = %s",
        [name, name],
    )


def _refresh_statements(
    model: ViewModel, connection: Any, mode: RefreshMode
) -> list[tuple[str, list[Any] | None]]:
    if not is_incremental(model):
        return [(ddl.refresh_view(model, connection, concurrently=mode.concurrently), None)]
    # A full rebuild covers the keys marked before it, too.
    keymarks = ("DELETE FROM live_matview_keymark WHERE view_name = %s", [model._meta.db_table])
    return [keymarks, *((s, None) for s in incremental.rebuild_statements(model, connection))]


def _mark_dependents(
    cursor: Any, model: ViewModel, alias: str, refreshed: Collection[ViewModel]
) -> None:
    """The views that read this one are stale now; marked in the refresh's transaction.

    Not a view this pass has refreshed already that this one depends on: views that list
    each other in ``refresh_on`` would otherwise mark each other forever."""
    dependents = source_map(alias).dependents
    children = sorted(
        child._meta.db_table
        for child in dependents.get(model, ())
        if not (child in refreshed and model in _reachable(child, dependents))
    )
    if children:
        cursor.executemany(
            "INSERT INTO live_matview_dirtymark (view_name, source, marked_at) "
            "VALUES (%s, %s, now())",
            [(child, model._meta.db_table) for child in children],
        )


def _reachable(start: ViewModel, edges: dict[ViewModel, set[ViewModel]]) -> set[ViewModel]:
    seen: set[ViewModel] = set()
    stack = [start]
    while stack:
        for child in edges.get(stack.pop(), ()):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def _log_hand_off(
    model: ViewModel, alias: str, attempt: _Attempt, trigger: str, lock: Any
) -> MaterializedViewRefreshLog:
    holder = f"process {lock.holder}" if lock.holder else "another process"
    reason = (
        f"waited {lock.waited:.1f}s for the lock, which {holder} holds: "
        "handed to the background refresher"
    )
    logger.info("%s: %s", model._meta.label, reason)
    return write_log(
        model,
        alias,
        started_at=attempt.started_at,
        lock_wait=timedelta(seconds=lock.waited),
        reason=reason[:255],
        trigger=trigger,
    )


def _log_failure(
    model: ViewModel, alias: str, attempt: _Attempt, trigger: str, error: BaseException
) -> MaterializedViewRefreshLog | None:
    """The attempt failed outside the REFRESH (taking the lock, recording the outcome) and
    was rolled back: log it in a transaction of its own, if the database still answers.
    The row is written even if the view's state, which may be what failed, cannot be."""
    if attempt.lock_wait is None:  # it failed waiting for the lock
        attempt.lock_wait = time.monotonic() - attempt.clock
    try:
        with own_transaction(alias):
            log = write_log(
                model,
                alias,
                started_at=attempt.started_at,
                lock_wait=_delta(attempt.lock_wait),
                duration=_delta(attempt.duration),
                failed=True,
                concurrently=attempt.mode.concurrently if attempt.mode else None,
                reason=attempt.mode.reason if attempt.mode else "",
                trigger=trigger,
                error=str(error).strip(),
            )
            try:
                with transaction.atomic(using=alias):
                    record_outcome(model, alias, log)
            except DatabaseError as exc:
                logger.warning("Could not record the failure of %s: %s", model._meta.label, exc)
            return log
    except Exception as exc:  # noqa: BLE001  (the database may be gone: report the first error)
        logger.warning("Could not log the failed refresh of %s: %s", model._meta.label, exc)
        return None


def _delta(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def _refresh_failed(
    model: ViewModel, alias: str, log: MaterializedViewRefreshLog | None, error: BaseException
) -> NoReturn:
    message = log.error if log is not None else str(error).strip()
    logger.error("Refresh of %s failed: %s", model._meta.label, message)
    refresh_failed.send(sender=model, log=log, error=error, using=alias)
    log_id = log.pk if log is not None else None
    if isinstance(error, RefreshError):
        error.log_id = log_id
        raise error
    raise RefreshError(
        f"Refreshing {model._meta.label} failed: {message}",
        view_name=model._meta.db_table,
        log_id=log_id,
    ) from error
