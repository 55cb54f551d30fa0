"""Refresh one view: take its lock, choose CONCURRENTLY or plain, run it, log it, signal it."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from .. import conf
from .._compat import sql
from ..capture.source_map import source_map
from ..capture.statements import marks_covered
from ..exceptions import RefreshError
from ..models import MaterializedViewRefreshLog
from ..schema import ddl
from ..schema.database_graph import database_graph
from ..signals import refresh_failed, view_refreshed
from ..views.declaration import ViewModel
from ..views.incremental import is_incremental
from ..views.names import as_string
from .by_key import refresh_by_key
from .locking import RETRYABLE, acquire, in_callers_transaction, own_transaction, sqlstate
from .log import record_outcome, write_log
from .outcome import Skipped

logger = logging.getLogger("live_matview.refresh")


def lock_view(cursor: Any, quoted_name: str, *, wait: bool = True) -> bool:
    """Take the view's transaction-scoped advisory lock (safe behind PgBouncer)."""
    return acquire(cursor, quoted_name, wait=wait).acquired


#: Attempts of a refresh in its own transaction that hits a serialization failure or a
#: deadlock (a caller's transaction cannot be run again, so inside one: a single attempt).
ATTEMPTS = 3

#: The library's own transactions run at READ COMMITTED whatever the connection's default
#: (see ``locking``); sent in the same string as the refresh, so in the same transaction.
_READ_COMMITTED = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; "

#: ``live_matview_refresh()``'s arguments after the view's, with their types.
_ARGUMENT_TYPES = (
    "text", "text", "boolean", "text", "text", "text[]", "integer", "boolean",
    "float8", "boolean", "boolean", "boolean", "text", "text", "text", "float8", "float8",
)  # fmt: skip


@dataclass
class _Attempt:
    """What one attempt got to, for the log row of an attempt that failed outside the
    server-side refresh (the lock wait cancelled, the state row failing)."""

    started_at: Any
    clock: float = 0.0  # time.monotonic() at the start
    lock_wait: float | None = None
    duration: float | None = None


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

    One statement does it all (``live_matview_refresh()``, made by migration 0005): it
    takes the view's lock, chooses the mode, deletes the marks and runs the REFRESH in a
    subtransaction (a failure restores the marks, so the view stays dirty and is retried,
    and is still logged inside the caller's ``atomic()``), marks the dependents and writes
    the log and state rows. Marks of writes that commit while the refresh runs are not
    visible to its DELETE, so they lead to another refresh. Every attempt writes a log
    row, also one that failed on the lock or while recording its outcome.

    With ``wait=False`` a view another process is refreshing is left to it
    (``Skipped.BUSY``); with ``max_wait`` it is waited for that many seconds at most
    (``Skipped.HANDED_OFF``: the caller hands it on). With ``only_if_marked=True`` a view
    without marks is skipped (``Skipped.CLEAN``): a refresh that started after the
    caller's commit has consumed them, and so covered its write. ``refreshed`` are the
    views the current pass has refreshed already: they are not marked again (a cycle).
    """
    if is_incremental(model):
        # Stored as a table that only its refresh function writes: a full rebuild is
        # that function after a whole-view mark (CONCURRENTLY does not apply to it).
        return refresh_by_key(
            model,
            using=using,
            trigger=trigger,
            wait=wait,
            only_if_marked=False,
            full=True,
            refreshed=refreshed,
        )
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    nested = in_callers_transaction(connection)
    attempts = 1 if nested else ATTEMPTS
    arguments = _arguments(
        model,
        alias,
        concurrently=model.refresh_concurrently if concurrently is None else concurrently,
        trigger=trigger,
        wait=wait,
        max_wait=max_wait,
        only_if_marked=only_if_marked,
        nested=nested,
        refreshed=refreshed,
    )
    number = 0
    while True:
        number += 1
        attempt = _Attempt(started_at=timezone.now(), clock=time.monotonic())
        try:
            row = _call(connection, arguments, nested=nested, retry=number < attempts)
        except DatabaseError as exc:
            if number < attempts and sqlstate(exc) in RETRYABLE:
                logger.info("Refresh of %s hit %s; trying again", model._meta.label, exc)
                continue
            _refresh_failed(model, alias, _log_failure(model, alias, attempt, trigger, exc), exc)
        break
    outcome = row[0]
    if outcome == "busy":
        return Skipped.BUSY
    if outcome == "clean":
        return Skipped.CLEAN
    log = _log_row(model, alias, trigger, row)
    if outcome == "handed_off":
        logger.info("%s: %s", model._meta.label, log.reason)
        return Skipped.HANDED_OFF
    if outcome == "failed":
        _refresh_failed(model, alias, log, _error(model, log, row[5]))
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


def _arguments(
    model: ViewModel,
    alias: str,
    *,
    concurrently: bool | None,
    trigger: str,
    wait: bool,
    max_wait: float | None,
    only_if_marked: bool,
    nested: bool,
    refreshed: Collection[ViewModel],
) -> list[Any]:
    """``live_matview_refresh()``'s arguments; settings are read now, at call time."""
    connection = connections[alias]
    problem = database_graph(alias).broken.get(model)
    meta = model._meta
    return [
        ddl.relation(model).quoted(connection),
        meta.db_table,
        meta.label,
        concurrently,
        trigger,
        alias,
        source_map(alias).children_to_mark(model, refreshed),
        conf.advisory_lock_namespace(),
        wait,
        max_wait,
        only_if_marked,
        nested,
        None,  # retry: per attempt
        # The stored definition would still refresh, but it may no longer be what the
        # code declares: fail, so the log and the retries show it until it is fixed.
        None if problem is None else f"{problem}. Fix it; ./manage.py check shows it too.",
        meta.app_label,
        meta.model_name,
        conf.retry_base(),
        conf.retry_max(),
    ]


_RETRY = 12  # the index of ``retry`` in the arguments


def _call(connection: Any, arguments: list[Any], *, nested: bool, retry: bool) -> Any:
    """Run ``live_matview_refresh()``.

    In a transaction of its own: one round trip in all. In autocommit, two statements
    sent as one string run as one implicit transaction, committed when the last ends, or
    rolled back as a whole should one fail; the first sets READ COMMITTED. Inside the
    caller's transaction: in a savepoint, which keeps it usable should the function
    itself fail (the lock wait cancelled, the state row refused)."""
    arguments = list(arguments)
    arguments[_RETRY] = retry
    statement = _statement(connection, arguments)
    if nested:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchone()
    with connection.cursor() as cursor:
        # No parameters: psycopg 3 then sends the string by the simple protocol, which
        # allows two statements; its cursor starts at the first result (the SET's).
        cursor.execute(_READ_COMMITTED + statement)
        while cursor.description is None and cursor.nextset():
            pass
        return cursor.fetchone()


def _statement(connection: Any, arguments: list[Any]) -> str:
    """The call, its values quoted by the driver (no parameters: see ``_call``)."""
    values = [sql.SQL("{}::text").format(sql.Literal(arguments[0]))]
    values += [
        sql.SQL("{}::" + kind).format(sql.Literal(value))
        for kind, value in zip(_ARGUMENT_TYPES, arguments[1:], strict=True)
    ]
    call = sql.SQL("SELECT * FROM {}.live_matview_refresh({})").format(
        sql.Identifier(conf.schema()), sql.SQL(", ").join(values)
    )
    return as_string(call, connection)


def _log_row(model: ViewModel, alias: str, trigger: str, row: Any) -> MaterializedViewRefreshLog:
    """The log row the function wrote, built from what it returned: no query."""
    _outcome, log_id, concurrently, reason, error, _code, started, ended, waited, spent = row
    values = {
        "id": log_id,
        "view_name": model._meta.db_table,
        "database": alias,
        "started_at": started,
        "updated_at": ended,
        "duration": spent,
        "lock_wait": waited,
        "failed": _outcome == "failed",
        "concurrently": concurrently,
        "reason": reason,
        "trigger": trigger,
        "error": error,
    }
    return MaterializedViewRefreshLog.from_db(alias, list(values), list(values.values()))


def _error(model: ViewModel, log: MaterializedViewRefreshLog, code: str | None) -> Exception:
    """What failed: the REFRESH (a database error, with its SQLSTATE), or the view itself
    (missing, or not what the code declares: a ``RefreshError``)."""
    if code is None:
        return RefreshError(log.error, view_name=model._meta.db_table)
    error = DatabaseError(log.error)
    error.sqlstate = code  # type: ignore[attr-defined]
    return error


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
                concurrently=None,  # it failed before choosing a mode
                reason="",
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
