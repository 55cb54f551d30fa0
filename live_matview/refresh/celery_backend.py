"""Celery backend of ``refresh_mode = "async"`` (``LIVE_MATVIEW_ASYNC = "celery"``).

One task per view at a time: a view's ``task_queued_at`` is claimed with a single
conditional UPDATE before a task is sent, and released when the task starts, so writes
that arrive while a task waits in the queue do not add tasks, and writes during its
refresh add exactly one more. The debounce window is the task's countdown. When the
broker cannot be reached the claim is released and the marks stay for the worker: an
outage delays refreshes, it never loses them.

Celery is an optional extra (``pip install "live-matview[celery]"``); this module is only
imported when that backend is used, and by Celery's ``autodiscover_tasks``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.apps import apps
from django.utils import timezone

from ..models import ManagedView
from ..views.declaration import ViewModel
from .locking import own_transaction
from .passes import refresh_pass, with_dependents

logger = logging.getLogger("live_matview.tasks")

#: A claim older than this is taken to belong to a task that was lost.
CLAIM_TTL = timedelta(minutes=10)
BUSY_RETRY_SECONDS = 0.5


def submit(using: str, views: Iterable[ViewModel]) -> list[ViewModel]:
    """Send one refresh task per view unless one is already queued; returns those sent."""
    sent = []
    for view in views:
        if not _claim(using, view):
            continue
        countdown = float(view.refresh_debounce or 0)
        try:
            refresh_view_task.apply_async(
                (using, view._meta.label), countdown=countdown, retry=False
            )
        except Exception as exc:  # noqa: BLE001  (any broker failure)
            _release(using, view)
            logger.warning(
                "Could not queue a refresh of %s (%s); its marks wait for the worker.",
                view._meta.label,
                exc,
            )
            continue
        sent.append(view)
    return sent


def _claim(using: str, view: ViewModel) -> bool:
    now = timezone.now()
    rows = ManagedView.objects.using(using).filter(view_name=view._meta.db_table)
    # READ COMMITTED: under REPEATABLE READ a claim racing another would fail to serialize.
    with own_transaction(using):
        claimed = rows.filter(task_queued_at__isnull=True).update(task_queued_at=now)
        claimed = claimed or rows.filter(task_queued_at__lt=now - CLAIM_TTL).update(
            task_queued_at=now
        )
        if claimed:
            return True
        return not rows.exists()  # a view the sync has not recorded yet: send, without dedup


def _release(using: str, view: ViewModel) -> None:
    ManagedView.objects.using(using).filter(view_name=view._meta.db_table).update(
        task_queued_at=None
    )


@shared_task(name="live_matview.refresh_view", bind=True, ignore_result=True, max_retries=None)
def refresh_view_task(self: Any, using: str, label: str) -> int:
    """Refresh one view (and the views built on it); returns how many were refreshed."""
    model = apps.get_model(label)
    _release(using, model)  # writes from now on queue a new task
    result = refresh_pass(using, with_dependents(using, {model}), trigger="async", wait=False)
    if model in result.skipped:  # another process holds the view: try again shortly
        raise self.retry(countdown=BUSY_RETRY_SECONDS)
    return len(result.refreshed)
