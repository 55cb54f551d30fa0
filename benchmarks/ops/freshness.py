"""Scenario 4: from a writer's commit to the moment a reader sees the write in the view.

Each sample creates a new customer and one order for it in one transaction; the view
``CustomerTotals`` shows the write once it has a row for that customer. A reader polls
for that row on this process's connection (every 0.5 ms), so on_commit, the in-process
thread and an out-of-process worker are timed the same way.
"""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.test.utils import override_settings

from benchmarks.project.shop.models import Customer, Order

POLL_SECONDS = 0.0005
SETTLE_TIMEOUT = 30.0


def _visible(customer_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM benchviews_customertotals WHERE customer_id = %s)",
            [customer_id],
        )
        return bool(cursor.fetchone()[0])


def _marks_left() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM live_matview_dirtymark)")
        return bool(cursor.fetchone()[0])


def _settle(mode: str) -> None:
    """Let the previous sample's refreshes finish, so samples do not overlap."""
    if mode == "async":
        from live_matview.testing import wait_for_background_refreshes

        wait_for_background_refreshes(SETTLE_TIMEOUT)
        return
    if mode == "manual":  # a worker drains the marks
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while _marks_left() and time.monotonic() < deadline:
            time.sleep(0.005)


def _sample(number: int, products: int, timeout: float) -> dict[str, Any]:
    with transaction.atomic():
        customer = Customer.objects.create(name=f"latency {number}")
        Order.objects.create(
            customer=customer,
            product_id=1 + number % products,
            quantity=1,
            amount=Decimal("9.99"),
        )
        committing = time.perf_counter()
    returned = time.perf_counter()
    deadline = returned + timeout
    seen = None
    while True:
        visible = _visible(customer.pk)
        now = time.perf_counter()
        if visible:
            seen = now
            break
        if now > deadline:
            break
        time.sleep(POLL_SECONDS)
    return {
        "writer_wait": returned - committing,
        "commit_to_fresh": None if seen is None else seen - committing,
    }


def latency(
    mode: str,
    samples: int,
    products: int,
    timeout: float = 30.0,
    jitter: float = 0.0,
    seed: int = 0,
) -> list[dict]:
    """``mode`` is the refresh mode of the writer: on_commit, async, or manual (a worker
    started by the orchestrator does the refreshing).

    ``jitter``: a random pause of up to that many seconds before each write. A polling
    worker needs it: samples start right after its previous pass (they wait for it to
    settle), so without it every write would wait a whole interval, the worst case.
    """
    connection.ensure_connection()
    pauses = random.Random(seed)
    results = []
    with override_settings(LIVE_MATVIEW_REFRESH_MODE=mode):
        _settle(mode)
        for number in range(samples):
            time.sleep(0.01 + pauses.uniform(0.0, jitter))  # as between requests
            results.append(_sample(number, products, timeout))
            _settle(mode)
    return results
