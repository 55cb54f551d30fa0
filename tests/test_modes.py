"""Refresh modes, debounce, the middleware, retries, and many writers at once."""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connections, transaction
from django.db.models import F
from django.test import RequestFactory
from django.test.utils import override_settings

from live_matview import refresh_dirty
from live_matview.middleware import DeferredRefreshMiddleware
from live_matview.refresh import background
from live_matview.testing import capture_refreshes, wait_for_background_refreshes
from tests.helpers import assert_fresh, fetch
from tests.testapp.models import (
    BigSpenders,
    Customer,
    CustomerTotals,
    Item,
    ItemSales,
    Order,
    OrderItemStats,
    OrderTagCounts,
)

pytestmark = pytest.mark.django_db(transaction=True)

FRESH_VIEWS = (CustomerTotals, BigSpenders, ItemSales, OrderItemStats, OrderTagCounts)


def test_async_mode_refreshes_in_the_background(customer, monkeypatch):
    monkeypatch.setattr(CustomerTotals, "refresh_mode", "async")
    with capture_refreshes() as refreshes:
        Order.objects.create(customer=customer, amount=10)
        wait_for_background_refreshes()
    refreshes.assert_refreshed(CustomerTotals)
    (model, log), *_ = [item for item in refreshes.refreshed if item[0] is CustomerTotals]
    assert log.trigger == "async"
    assert list(CustomerTotals.objects.values_list("orders", flat=True)) == [1]


class _Clock:
    """The background refresher's clock, which a test moves on instead of sleeping.

    It runs with real time, so nothing else changes; ``skip()`` jumps it forward and wakes
    the refresher to look at it (``submit`` of no views only does that)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def skip(self, seconds: float) -> None:
        self.offset += seconds
        background.submit("default", [])


@pytest.fixture
def clock(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(background, "time", clock)
    return clock


#: A debounce window or back-off no burst of writes outlasts, however loaded the machine;
#: the tests end it with ``clock.skip()``.
HOUR = 3600.0


def test_async_debounce_collapses_a_burst_into_one_trailing_refresh(customer, monkeypatch, clock):
    monkeypatch.setattr(CustomerTotals, "refresh_mode", "async")
    monkeypatch.setattr(CustomerTotals, "refresh_debounce", HOUR)
    with override_settings(LIVE_MATVIEW_REFRESH_MODE="manual"), capture_refreshes() as refreshes:
        Order.objects.create(customer=customer, amount=1)
        wait_for_background_refreshes()  # the first refresh of the window
        for amount in range(2, 12):
            Order.objects.create(customer=customer, amount=amount)
        assert refreshes.count(CustomerTotals) == 1  # the burst waits for the window's end
        clock.skip(HOUR)
        wait_for_background_refreshes()
    # One leading refresh, then the ten writes inside the window make exactly one more.
    refreshes.assert_refreshed(CustomerTotals, times=2)
    assert list(CustomerTotals.objects.values_list("orders", flat=True)) == [11]


@override_settings(LIVE_MATVIEW_REFRESH_MODE="manual")
def test_manual_mode_only_marks(customer):
    with capture_refreshes() as refreshes:
        Order.objects.create(customer=customer, amount=10)
    assert refreshes.refreshed == []
    assert CustomerTotals.objects.count() == 0
    assert fetch(
        "SELECT count(*) FROM live_matview_dirtymark WHERE view_name = 'testapp_customertotals'"
    ) == [(1,)]
    with capture_refreshes() as refreshes:
        refresh_dirty()
    refreshes.assert_refreshed(CustomerTotals, BigSpenders)
    assert CustomerTotals.objects.get().orders == 1


def test_middleware_refreshes_once_per_request(customer):
    def view(request):
        for amount in (1, 2, 3):
            with transaction.atomic():
                Order.objects.create(customer=customer, amount=amount)
        return "response"

    with capture_refreshes() as refreshes:
        assert DeferredRefreshMiddleware(view)(RequestFactory().get("/")) == "response"
    refreshes.assert_refreshed(CustomerTotals, BigSpenders)
    assert CustomerTotals.objects.get().orders == 3


def test_failed_refresh_is_retried_with_backoff(customer, clock):
    order = Order.objects.create(customer=customer, amount=1)
    with override_settings(LIVE_MATVIEW_RETRY_BASE=HOUR), capture_refreshes() as refreshes:
        with transaction.atomic():
            Item.objects.create(order=order, sku="X", quantity=2_000_000_000)
            Item.objects.create(order=order, sku="X", quantity=2_000_000_000)
        assert [m for m, _log in refreshes.failed] == [ItemSales]
        # Fix the data where no capture sees it: only the retry can refresh the view now.
        _fix_items_quietly()
        assert not any(m is ItemSales for m, _log in refreshes.refreshed)  # not before back-off
        clock.skip(HOUR)
        wait_for_background_refreshes()  # retries count as queued
    retry = next(log for m, log in refreshes.refreshed if m is ItemSales)
    assert retry.trigger == "retry"
    assert list(ItemSales.objects.values_list("sku", "quantity")) == [("X", 2)]


def _fix_items_quietly():
    """Change the data without Django seeing a write (as another service would)."""
    import psycopg2

    settings = connections["default"].settings_dict
    other = psycopg2.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
    )
    try:
        with other, other.cursor() as cursor:
            cursor.execute("ALTER TABLE testapp_item DISABLE TRIGGER USER")
            cursor.execute("UPDATE testapp_item SET quantity = 1")
            cursor.execute("ALTER TABLE testapp_item ENABLE TRIGGER USER")
    finally:
        other.close()


def _writer(customer_ids: list[int], seed: int, transactions: int, errors: list) -> None:
    """One writer thread, with its own connection, on its own customers (no row conflicts
    between writers: the contention under test is the refreshes')."""
    rnd = random.Random(seed)
    try:
        for n in range(transactions):
            customer_id = rnd.choice(customer_ids)
            with transaction.atomic():
                choice = rnd.random()
                if choice < 0.6:
                    order = Order.objects.create(customer_id=customer_id, amount=rnd.randint(1, 90))
                    Item.objects.create(order=order, sku=f"S{n % 5}", quantity=rnd.randint(1, 3))
                elif choice < 0.85:
                    Order.objects.filter(customer_id=customer_id).update(amount=F("amount") + 7)
                else:
                    doomed = Order.objects.filter(customer_id=customer_id).order_by("id")[:1]
                    Order.objects.filter(pk__in=list(doomed.values_list("pk", flat=True))).delete()
    except BaseException as exc:  # pragma: no cover  (reported by the test)
        errors.append(exc)
    finally:
        connections.close_all()


@pytest.mark.parametrize("mode", ["on_commit", "async"])
@pytest.mark.parametrize(
    ("runs", "transactions"),
    [
        # The same 8 writers, mix of writes and checks, at a size that takes seconds...
        pytest.param(2, 15, id="short"),
        # ...and at full size (4,800 transactions per mode), with --slow and in CI.
        pytest.param(3, 200, id="full", marks=pytest.mark.slow),
    ],
)
def test_eight_writers_leave_every_view_equal_to_its_query(mode, runs, transactions):
    customers = [Customer.objects.create(name=f"c{n}").pk for n in range(32)]
    with override_settings(LIVE_MATVIEW_REFRESH_MODE=mode):
        for run in range(runs):
            errors: list = []
            threads = [
                threading.Thread(
                    target=_writer, args=(customers[w::8], run * 100 + w, transactions, errors)
                )
                for w in range(8)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=600)
            assert not errors, errors
            assert not any(thread.is_alive() for thread in threads)
            wait_for_background_refreshes(timeout=120)
            assert_fresh(*FRESH_VIEWS)
