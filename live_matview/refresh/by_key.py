"""Refresh an incremental view by key: recompute only the rows of the keys writes touched.

One transaction, under the view's advisory lock (the same lock a full refresh takes, so
refreshes of one view never overlap: no deadlock, no unique violation, no lost change):

1. the lock, in its own statement: a refresh that held it has committed before the next
   statement takes its snapshot;
2. the key marks are taken (``DELETE ... RETURNING``): every write whose mark is taken
   had committed before this statement's snapshot;
3. the rows of those keys are recomputed from the view's query and replaced, in one
   later statement, whose snapshot therefore sees every one of those writes. A write that
   commits after step 2 left its mark in place, so it leads to another refresh.

Steps 2 and 3 share a savepoint: if the recompute fails, the marks are back and the view
is retried. Readers see the old rows or the new, never a gap (one commit, MVCC).

A full mark (TRUNCATE, a write only Django saw, the fallback of a key trigger that could
not trace a row) or more keys than ``LIVE_MATVIEW_INCREMENTAL_MAX_SHARE`` of the view's
rows make it a full rebuild instead, which readers do not wait for either.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone

from .. import conf
from ..exceptions import RefreshError
from ..models import ManagedView, MaterializedViewRefreshLog
from ..schema import ddl, incremental
from ..signals import refresh_failed, view_refreshed
from ..views.declaration import ViewModel
from .full import Skipped, _mark_dependents, _record_outcome, lock_view

logger = logging.getLogger("live_matview.refresh")

FULL, BY_KEY = "full", "by_key"
#: Below this many keys a by-key refresh is cheap whatever the share of the view.
MIN_KEYS_FOR_REBUILD = 100

_TAKE_MARKS = (
    "WITH taken AS (DELETE FROM live_matview_keymark WHERE view_name = %s RETURNING key) "
    "SELECT (SELECT array_agg(DISTINCT key) FROM taken), "
    "EXISTS (SELECT 1 FROM live_matview_dirtymark WHERE view_name = %s)"
)


def choose_kind(keys: int, full_marked: bool, rows: float) -> tuple[str, str]:
    """Full or by key, and why (the log's ``reason``)."""
    if full_marked:
        return FULL, "a change not traced to keys (TRUNCATE, or a write without key capture)"
    share = conf.incremental_max_share()
    if rows >= 0 and keys > MIN_KEYS_FOR_REBUILD and keys > share * rows:
        return FULL, f"{keys} keys, over {share:.0%} of the view's ~{rows:.0f} rows"
    return BY_KEY, f"{keys} key{'s' if keys != 1 else ''} changed"


def refresh_by_key(
    model: ViewModel,
    *,
    using: str | None = None,
    trigger: str = "on_commit",
    wait: bool = True,
    only_if_marked: bool = True,
) -> MaterializedViewRefreshLog | Skipped:
    """Bring an incremental view up to date with its marks; the log row, or why not.

    Raises ``RefreshError`` on failure (logged first), like ``full.refresh_view``.
    """
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    name = model._meta.db_table
    started_at, clock = timezone.now(), time.monotonic()
    error: BaseException | None = None
    kind, reason, count = BY_KEY, "", 0
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        if not lock_view(cursor, ddl.relation(model).quoted(connection), wait=wait):
            return Skipped.BUSY
        oid = incremental.view_oid(cursor, connection, model)
        if oid is None:
            error = RefreshError(
                f"{model._meta.label}: its table {name} does not exist; "
                "run ./manage.py migrate_with_views.",
                view_name=name,
            )
        else:
            try:
                with transaction.atomic(using=alias):
                    outcome = _refresh(cursor, connection, model, oid, only_if_marked)
            except DatabaseError as exc:
                error = exc
            else:
                if outcome is None:
                    return Skipped.CLEAN
                kind, reason, count = outcome
        log = MaterializedViewRefreshLog.objects.using(alias).create(
            view_name=name,
            database=alias,
            started_at=started_at,
            duration=timedelta(seconds=time.monotonic() - clock),
            failed=error is not None,
            concurrently=None,
            reason=reason,
            trigger=trigger,
            kind=kind,
            keys=count if kind == BY_KEY else None,
            error="" if error is None else str(error).strip(),
        )
        _record(model, alias, log)
    if error is not None:
        logger.error("Refresh of %s failed: %s", model._meta.label, log.error)
        refresh_failed.send(sender=model, log=log, error=error, using=alias)
        if isinstance(error, RefreshError):
            error.log_id = log.pk
            raise error
        raise RefreshError(
            f"Refreshing {model._meta.label} failed: {log.error}", view_name=name, log_id=log.pk
        ) from error
    logger.info("Refreshed %s %s (%s)", model._meta.label, kind.replace("_", " "), reason)
    view_refreshed.send(sender=model, log=log, using=alias)
    return log


def _refresh(
    cursor: Any, connection: Any, model: ViewModel, oid: int, only_if_marked: bool
) -> tuple[str, str, int] | None:
    """Take the marks and apply them; ``None`` when there were none to take."""
    name = model._meta.db_table
    cursor.execute(_TAKE_MARKS, [name, name])
    keys, full_marked = cursor.fetchone()
    keys = keys or []
    if only_if_marked and not keys and not full_marked:
        return None
    columns, key_type, rows = incremental.table_shape(cursor, oid, model._meta.pk.column)
    kind, reason = choose_kind(len(keys), full_marked, rows)
    changed = 1
    if kind == FULL:
        cursor.execute("DELETE FROM live_matview_dirtymark WHERE view_name = %s", [name])
        for statement in incremental.rebuild_statements(model, connection):
            cursor.execute(statement)
    elif keys:
        statement = incremental.by_key_statement(model, connection, columns, key_type)
        cursor.execute(statement, [keys, keys])
        changed = int(cursor.fetchone()[0])
    else:
        changed = 0
    if changed:  # rows that did not change leave the views built on this one fresh
        _mark_dependents(cursor, model, connection.alias)
    return kind, reason, len(keys)


def _record(model: ViewModel, alias: str, log: MaterializedViewRefreshLog) -> None:
    """A success is one UPDATE of the view's state (this runs after every write)."""
    if not log.failed:
        updated = (
            ManagedView.objects.using(alias)
            .filter(view_name=model._meta.db_table)
            .update(
                consecutive_failures=0,
                next_retry_at=None,
                last_error="",
                last_refreshed_at=log.updated_at,
            )
        )
        if updated:
            return
    _record_outcome(model, alias, log)
