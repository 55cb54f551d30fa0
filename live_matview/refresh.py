"""Refresh one view: take its lock, choose CONCURRENTLY or plain, run it, log it, signal it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from . import conf, ddl, introspection
from .exceptions import RefreshError
from .models import MaterializedViewRefreshLog
from .signals import refresh_failed, view_refreshed

if TYPE_CHECKING:
    from .base_model import MaterializedViewModel

    ViewModel = type[MaterializedViewModel]

logger = logging.getLogger("live_matview.refresh")


@dataclass(frozen=True)
class RefreshMode:
    concurrently: bool
    reason: str


def choose_mode(model: ViewModel, cursor: Any, oid: int, requested: bool | None) -> RefreshMode:
    """CONCURRENTLY keeps readers going but needs a populated view with a unique index."""
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


def refresh_view(
    model: ViewModel,
    *,
    using: str | None = None,
    concurrently: bool | None = None,
    trigger: str = "manual",
) -> MaterializedViewRefreshLog:
    """Refresh ``model`` now and return its log row; raise ``RefreshError`` on failure.

    The REFRESH runs in a savepoint, so that when it fails inside the caller's
    ``atomic()`` the failure can still be written to the log.
    """
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    quoted = ddl.relation(model).quoted(connection)
    started_at = timezone.now()
    clock = time.monotonic()
    error: BaseException | None = None
    mode = RefreshMode(False, "")
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        lock_view(cursor, quoted)
        oid = introspection.matview_oid(cursor, quoted)
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
                        ddl.refresh_view(model, connection, concurrently=mode.concurrently)
                    )
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
