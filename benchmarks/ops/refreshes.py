"""Scenarios 3, 5 and 6: one refresh of one view, by the library, by hand, or by the
old library, each through this process's Django connection (so the driver and the
connection are the same for all three)."""

from __future__ import annotations

from django.apps import apps
from django.db import DatabaseError, connection

from .timing import stopwatch

HOW = ("library", "hand", "oldlib")
VIEWS = {"customertotals": "CustomerTotals", "productsales": "ProductSales"}

_can_checkpoint = True


def _checkpoint() -> None:
    """Flush dirty buffers first (not timed), so a checkpoint does not land inside one
    variant's refresh; skipped for good if the role may not run CHECKPOINT."""
    global _can_checkpoint
    if not _can_checkpoint:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
    except DatabaseError:
        _can_checkpoint = False


def refresh(how: str, view: str, concurrently: bool, checkpoint: bool = True) -> float:
    """Seconds one refresh took, as its caller waits for it."""
    connection.ensure_connection()
    if checkpoint:
        _checkpoint()
    if how == "hand":
        keyword = "CONCURRENTLY " if concurrently else ""
        table = connection.ops.quote_name(f"benchviews_{view}")
        with stopwatch() as elapsed, connection.cursor() as cursor:
            cursor.execute(f"REFRESH MATERIALIZED VIEW {keyword}{table}")
        return elapsed.seconds
    if how not in HOW:
        raise ValueError(f"unknown refresh kind {how!r}; one of {HOW}")
    # Both libraries' models are in the app labelled benchviews (only one is installed).
    model = apps.get_model("benchviews", VIEWS[view])
    with stopwatch() as elapsed:
        model.refresh(concurrently=concurrently)
    if how == "oldlib":
        _raise_if_old_refresh_failed()
    return elapsed.seconds


def _raise_if_old_refresh_failed() -> None:
    """django-materialized-view swallows refresh errors; a failed refresh is fast, and
    must not be measured as a good one."""
    from django_materialized_view.models import MaterializedViewRefreshLog

    last = MaterializedViewRefreshLog.objects.order_by("-id").first()
    if last is None or last.failed:
        raise RuntimeError("django-materialized-view's refresh failed (see its log table)")


TINY_VIEWS = 100


def tiny_pass(how: str) -> float:
    """Seconds to refresh 100 dirty tiny views: ``refresh_dirty()`` (the pass a worker
    runs) or a hand loop of ``REFRESH MATERIALIZED VIEW CONCURRENTLY`` over the same
    views. Not timed: one UPDATE of their source, whose capture trigger marks all 100."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute('UPDATE "benchshop_tiny" SET value = value + 1')
        if how == "hand":  # the hand loop consumes no marks: do not leave them to the next
            cursor.execute("DELETE FROM live_matview_dirtymark")
    if how == "hand":
        names = [connection.ops.quote_name(f"benchviews_tiny{n:03d}") for n in range(TINY_VIEWS)]
        with stopwatch() as elapsed, connection.cursor() as cursor:
            for name in names:
                cursor.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {name}")
        return elapsed.seconds
    from live_matview import refresh_dirty  # the library is installed in this variant only

    with stopwatch() as elapsed:
        result = refresh_dirty()
    if len(result.refreshed) != TINY_VIEWS:
        raise RuntimeError(f"refresh_dirty() refreshed {len(result.refreshed)} tiny views")
    return elapsed.seconds
