"""Refresh one view: take its lock, choose CONCURRENTLY or plain, run it, log it, signal it."""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from .. import conf
from ..capture.source_map import source_map
from ..exceptions import RefreshError
from ..models import ManagedView, MaterializedViewRefreshLog
from ..schema import ddl, incremental, introspection
from ..signals import refresh_failed, view_refreshed
from ..views.declaration import ViewModel
from ..views.incremental import is_incremental

logger = logging.getLogger("live_matview.refresh")


class Skipped(enum.Enum):
    """Why ``refresh_view`` did not refresh."""

    BUSY = "another process holds the view's lock"
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
    function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
    cursor.execute(
        f"SELECT {function}(%s, hashtext(%s))", [conf.advisory_lock_namespace(), quoted_name]
    )
    return wait or bool(cursor.fetchone()[0])


def has_marks(cursor: Any, view_name: str) -> bool:
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM live_matview_dirtymark WHERE view_name = %s)", [view_name]
    )
    return bool(cursor.fetchone()[0])


def refresh_view(
    model: ViewModel,
    *,
    using: str | None = None,
    concurrently: bool | None = None,
    trigger: str = "manual",
    wait: bool = True,
    only_if_marked: bool = False,
) -> MaterializedViewRefreshLog | Skipped:
    """Refresh ``model`` now and return its log row; raise ``RefreshError`` on failure.

    The view's marks are deleted and the REFRESH run in one savepoint: a failure restores
    the marks (so the view stays dirty and is retried) and can still be written to the
    log inside the caller's ``atomic()``. Marks of writes that commit while the refresh
    runs are not visible to its DELETE, so they lead to another refresh.

    With ``wait=False`` a view another process is refreshing is left to it
    (``Skipped.BUSY``). With ``only_if_marked=True`` a view without marks is skipped
    (``Skipped.CLEAN``): a refresh that started after the caller's commit has consumed
    them, and so covered its write.
    """
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    quoted = ddl.relation(model).quoted(connection)
    started_at = timezone.now()
    clock = time.monotonic()
    error: BaseException | None = None
    mode = RefreshMode(False, "")
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        if not lock_view(cursor, quoted, wait=wait):
            return Skipped.BUSY
        if only_if_marked and not has_marks(cursor, model._meta.db_table):
            return Skipped.CLEAN
        oid = incremental.view_oid(cursor, connection, model)
        if oid is None:
            error = RefreshError(
                f"{model._meta.label}: materialized view {quoted} does not exist; "
                "run ./manage.py migrate_with_views.",
                view_name=model._meta.db_table,
            )
        else:
            mode = choose_mode(model, cursor, oid, concurrently)
            try:
                with transaction.atomic(using=alias):
                    cursor.execute(
                        "DELETE FROM live_matview_dirtymark WHERE view_name = %s",
                        [model._meta.db_table],
                    )
                    for statement, params in _refresh_statements(model, connection, mode):
                        cursor.execute(statement, params)
                    _mark_dependents(cursor, model, alias)
            except DatabaseError as exc:
                error = exc
        log = MaterializedViewRefreshLog.objects.using(alias).create(
            view_name=model._meta.db_table,
            database=alias,
            started_at=started_at,
            duration=timedelta(seconds=time.monotonic() - clock),
            failed=error is not None,
            concurrently=mode.concurrently if oid is not None else None,
            reason=mode.reason,
            trigger=trigger,
            error="" if error is None else str(error).strip(),
        )
        _record_outcome(model, alias, log)
    if error is not None:
        logger.error("Refresh of %s failed: %s", model._meta.label, log.error)
        refresh_failed.send(sender=model, log=log, error=error, using=alias)
        if isinstance(error, RefreshError):
            error.log_id = log.pk
            raise error
        raise RefreshError(
            f"Refreshing {model._meta.label} failed: {log.error}",
            view_name=model._meta.db_table,
            log_id=log.pk,
        ) from error
    logger.info(
        "Refreshed %s %s in %.3fs (%s)",
        model._meta.label,
        "concurrently" if mode.concurrently else "plainly",
        log.duration.total_seconds() if log.duration else 0.0,
        mode.reason,
    )
    view_refreshed.send(sender=model, log=log, using=alias)
    return log


def _refresh_statements(
    model: ViewModel, connection: Any, mode: RefreshMode
) -> list[tuple[str, list[Any] | None]]:
    if not is_incremental(model):
        return [(ddl.refresh_view(model, connection, concurrently=mode.concurrently), None)]
    # A full rebuild covers the keys marked before it, too.
    keymarks = ("DELETE FROM live_matview_keymark WHERE view_name = %s", [model._meta.db_table])
    return [keymarks, *((s, None) for s in incremental.rebuild_statements(model, connection))]


def _mark_dependents(cursor: Any, model: ViewModel, alias: str) -> None:
    """The views that read this one are stale now; marked in the refresh's transaction."""
    children = sorted(child._meta.db_table for child in source_map(alias).dependents.get(model, ()))
    if children:
        cursor.executemany(
            "INSERT INTO live_matview_dirtymark (view_name, source, marked_at) "
            "VALUES (%s, %s, now())",
            [(child, model._meta.db_table) for child in children],
        )


def _record_outcome(model: ViewModel, alias: str, log: MaterializedViewRefreshLog) -> None:
    """Keep the view's refresh state: back-off after failures, cleared by a success."""
    state, _created = ManagedView.objects.using(alias).get_or_create(
        view_name=model._meta.db_table,
        defaults={"app_label": model._meta.app_label, "model_name": model._meta.model_name},
    )
    if log.failed:
        state.consecutive_failures += 1
        delay = conf.retry_backoff(state.consecutive_failures)
        state.next_retry_at = log.updated_at + timedelta(seconds=delay)
        state.last_error = log.error
    else:
        state.consecutive_failures = 0
        state.next_retry_at = None
        state.last_error = ""
        state.last_refreshed_at = log.updated_at
    state.save(
        using=alias,
        update_fields=["consecutive_failures", "next_retry_at", "last_error", "last_refreshed_at"],
    )
