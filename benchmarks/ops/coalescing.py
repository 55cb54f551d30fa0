"""Scenario 2: how many refreshes 1,000 writes cause, and what they cost in total.

The writes touch all three source models (one in ten a customer, one in ten a product,
the rest new orders), so both views are dirtied many times over. Two hand-made
opponents: the naive ``post_save`` receiver that refreshes the views a save feeds on
every save, and the best short version a Django developer would write, which collects
the dirty views and refreshes each once in ``transaction.on_commit``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.apps import apps
from django.db import connection, transaction
from django.db.models.signals import post_save
from django.test.utils import override_settings

from benchmarks.project.shop.models import Customer, Order, Product

from .timing import stopwatch
from .writes import order_values

STYLES = ("txn", "autocommit", "deferred")
VIEWS_OF = {
    Customer: ["benchviews_customertotals"],
    Product: ["benchviews_productsales"],
    Order: ["benchviews_customertotals", "benchviews_productsales"],
}


def mixed_writes(n: int, customers: int, products: int) -> None:
    for i in range(n):
        kind = i % 10
        if kind == 0:
            Customer(pk=1 + (i // 10) % customers, name=f"customer {i}").save()
        elif kind == 1:
            Product(pk=1 + (i // 10) % products, name=f"product {i}", price=i % 100).save()
        else:
            Order(**order_values(i, customers, products)).save()


@contextmanager
def naive_receivers(counts: Counter[str]) -> Iterator[None]:
    """The usual hand-written refresh: a plain REFRESH in post_save, every save."""

    def refresh(sender: type, **kwargs: object) -> None:
        with connection.cursor() as cursor:
            for view in VIEWS_OF[sender]:
                cursor.execute(f'REFRESH MATERIALIZED VIEW "{view}"')
                counts[view] += 1

    for model in VIEWS_OF:
        post_save.connect(refresh, sender=model, dispatch_uid=f"naive-{model.__name__}")
    try:
        yield
    finally:
        for model in VIEWS_OF:
            post_save.disconnect(sender=model, dispatch_uid=f"naive-{model.__name__}")


@contextmanager
def on_commit_receivers(counts: Counter[str]) -> Iterator[None]:
    """The best ten lines by hand: collect dirty views, refresh each once after commit."""
    dirty: set[str] = set()

    def refresh_dirty() -> None:
        views = sorted(dirty)
        dirty.clear()
        with connection.cursor() as cursor:
            for view in views:
                cursor.execute(f'REFRESH MATERIALIZED VIEW "{view}"')
                counts[view] += 1

    def collect(sender: type, **kwargs: object) -> None:
        first = not dirty
        dirty.update(VIEWS_OF[sender])
        if first:  # in autocommit on_commit runs at once, so collect first
            transaction.on_commit(refresh_dirty)

    for model in VIEWS_OF:
        post_save.connect(collect, sender=model, dispatch_uid=f"best-{model.__name__}")
    try:
        yield
    finally:
        for model in VIEWS_OF:
            post_save.disconnect(sender=model, dispatch_uid=f"best-{model.__name__}")


HAND_MADE = {"naive": naive_receivers, "best": on_commit_receivers}


def _run(style: str, writes: Callable[[], None]) -> None:
    if style == "txn":
        with transaction.atomic():
            writes()
    elif style == "autocommit":
        writes()
    elif style == "deferred":
        from live_matview import deferred_refresh

        with deferred_refresh():
            writes()
    else:
        raise ValueError(f"unknown style {style!r}; one of {STYLES}")


def coalesce(
    style: str, n: int, customers: int, products: int, hand: str = "naive"
) -> dict[str, object]:
    """Seconds for the whole block (refreshes included) and refreshes per view.

    Without live_matview, ``hand`` picks the hand-made receiver: ``naive`` or ``best``.
    """
    connection.ensure_connection()

    def writes() -> None:
        mixed_writes(n, customers, products)

    if not apps.is_installed("live_matview"):
        counts: Counter[str] = Counter()
        with HAND_MADE[hand](counts), stopwatch() as elapsed:
            _run(style, writes)
        return {"seconds": elapsed.seconds, "refreshes": dict(counts)}
    from live_matview.testing import capture_refreshes

    with (
        override_settings(LIVE_MATVIEW_REFRESH_MODE="on_commit"),
        capture_refreshes() as recorder,
        stopwatch() as elapsed,
    ):
        _run(style, writes)
    refreshed = Counter(model._meta.db_table for model, _log in recorder.refreshed)
    return {
        "seconds": elapsed.seconds,
        "refreshes": dict(refreshed),
        "failed": len(recorder.failed),
    }
