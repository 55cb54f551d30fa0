"""The refresh log and each view's refresh state: writing them, and pruning old log rows."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import connections
from django.utils import timezone

from .. import conf
from ..models import ManagedView, MaterializedViewRefreshLog
from ..views.declaration import ViewModel
from .locking import own_transaction

logger = logging.getLogger("live_matview.refresh")


def write_log(model: ViewModel, alias: str, **fields: Any) -> MaterializedViewRefreshLog:
    return MaterializedViewRefreshLog.objects.using(alias).create(
        view_name=model._meta.db_table, database=alias, **fields
    )


def record_outcome(model: ViewModel, alias: str, log: MaterializedViewRefreshLog) -> None:
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


_PRUNE = """
DELETE FROM {log} WHERE updated_at < %s AND id NOT IN (
    SELECT max(old.id) FROM {log} old WHERE old.updated_at < %s GROUP BY old.view_name
    HAVING NOT EXISTS (
        SELECT 1 FROM {log} newer
        WHERE newer.view_name = old.view_name AND newer.updated_at >= %s
    )
)
"""


def prune_log(using: str, retention: timedelta | None = None) -> int:
    """Delete log rows older than ``retention`` (default ``LIVE_MATVIEW_LOG_RETENTION``),
    keeping the latest row of each view however old; returns how many were deleted.

    One statement whose cost follows the old rows only: it reads them through the
    ``updated_at`` index, and probes ``(view_name, updated_at)`` once per view among them.
    """
    retention = conf.log_retention() if retention is None else retention
    if retention is None:
        return 0
    cutoff = timezone.now() - retention
    table = connections[using].ops.quote_name(MaterializedViewRefreshLog._meta.db_table)
    with own_transaction(using) as cursor:
        cursor.execute(_PRUNE.format(log=table), [cutoff, cutoff, cutoff])
        deleted = max(0, cursor.rowcount)
    if deleted:
        logger.info("Pruned %d refresh log rows older than %s", deleted, retention)
    return deleted
