"""Scenario 7's workloads: writes to one copy of the ledger, refreshes, the bare query.

Each save is an autocommit ``save()`` of one existing line, timed whole (with live_matview
in ``on_commit`` mode that includes the refresh the writer waits for); fetching the line
is not timed. Bulk changes are one ``QuerySet.update()`` of the first share of the lines,
timed with the refresh after it.
"""

from __future__ import annotations

import random
import statistics
from contextlib import nullcontext
from typing import Any

from django.apps import apps
from django.db import connection
from django.db.models import F
from django.test.utils import override_settings

from benchmarks.project.ledger.models import TABLES

from .timing import stopwatch


def _mode() -> Any:
    """on_commit, the default a user gets; a no-op where live_matview is not installed."""
    if apps.is_installed("live_matview"):
        return override_settings(LIVE_MATVIEW_REFRESH_MODE="on_commit")
    return nullcontext()


def ledger_save(copy: str, saves: int, lines: int, seed: int) -> float:
    """Median seconds of ``saves`` autocommit saves of random lines of ``copy``."""
    connection.ensure_connection()
    line_model = TABLES[copy][1]
    rng = random.Random(seed)
    times = []
    with _mode():
        for _ in range(saves):
            line = line_model.objects.get(pk=rng.randint(1, lines))
            line.quantity += 1
            with stopwatch() as elapsed:
                line.save()
            times.append(elapsed.seconds)
    return statistics.median(times)


def ledger_bulk(copy: str, share: float, lines: int) -> float:
    """Seconds of one UPDATE of the first ``share`` of the lines (and its refresh)."""
    connection.ensure_connection()
    line_model = TABLES[copy][1]
    last = max(1, int(lines * share))
    with _mode(), stopwatch() as elapsed:
        line_model.objects.filter(id__lte=last).update(quantity=F("quantity") + 1)
    return elapsed.seconds


def ledger_refresh(how: str) -> float:
    """``full``: the full-refresh view's ``refresh()``; ``rebuild``: the incremental view's
    ``refresh()`` (a full rebuild); ``select``: its query, run and fetched, nothing stored."""
    connection.ensure_connection()
    if how == "select":
        from live_matview.views.query import view_sql

        model = apps.get_model("benchviews", "IncAccountTotals")
        query = view_sql(model, connection)
        with stopwatch() as elapsed, connection.cursor() as cursor:
            cursor.execute(query)
            cursor.fetchall()
        return elapsed.seconds
    name = {"full": "FullAccountTotals", "rebuild": "IncAccountTotals"}[how]
    model = apps.get_model("benchviews", name)
    with stopwatch() as elapsed:
        model.refresh()
    return elapsed.seconds


def pg_ivm_available() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_ivm')"
        )
        return bool(cursor.fetchone()[0])
