"""Scenario 1's workloads: the same writes whatever the process has installed.

Only the statement(s) are timed: building the objects of a bulk write or the text of a
raw INSERT is the same in every variant and would only dilute the ratio. The save loops
time ``Order(...).save()`` whole, because that is what a view function pays.
"""

from __future__ import annotations

from decimal import Decimal

from django.apps import apps
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import override_settings

from benchmarks.project.shop.models import Order

from .timing import stopwatch

KINDS = ("save_txn", "save_autocommit", "bulk_create", "update", "raw_insert", "server_loop")


def order_values(i: int, customers: int, products: int) -> dict[str, object]:
    """Row ``i``: spread over every customer and product, deterministic."""
    return {
        "customer_id": 1 + i % customers,
        "product_id": 1 + (i * 7) % products,
        "quantity": 1 + i % 5,
        "amount": Decimal(i * 37 % 100_000) / 100,
    }


def _save_loop(n: int, customers: int, products: int) -> None:
    for i in range(n):
        Order(**order_values(i, customers, products)).save()


def _raw_insert_sql(n: int, customers: int, products: int) -> str:
    rows = []
    for i in range(n):
        v = order_values(i, customers, products)
        rows.append(
            f"({v['customer_id']}, {v['product_id']}, {v['quantity']}, {v['amount']}, now())"
        )
    table = connection.ops.quote_name(Order._meta.db_table)
    return (
        f"INSERT INTO {table} (customer_id, product_id, quantity, amount, created) VALUES "
        + ", ".join(rows)
    )


def _server_loop_sql(n: int, customers: int, products: int) -> str:
    """``n`` single-row INSERTs in one transaction, looped by the server: no round trips,
    so what remains is the per-statement cost of the table's triggers (research B.3, P3).
    Django-side capture cannot see inside a DO block: the signals mode has nothing to do."""
    table = connection.ops.quote_name(Order._meta.db_table)
    n, customers, products = int(n), int(customers), int(products)
    return (
        f"DO $$ BEGIN FOR i IN 1..{n} LOOP "
        f"INSERT INTO {table} (customer_id, product_id, quantity, amount, created) "
        f"VALUES (1 + i % {customers}, 1 + (i * 7) % {products}, 1 + i % 5, "
        "((i * 37) % 100000) / 100.0, now()); END LOOP; END $$"
    )


def write(kind: str, n: int, customers: int, products: int, mode: str = "manual") -> float:
    """Seconds the write took. ``update`` rewrites every row already in the table.

    ``mode`` is live_matview's refresh mode for the write (ignored where it is not
    installed): ``manual`` only marks; ``on_commit``, the default a user gets, makes the
    writer wait for the refresh of the views after each commit, and that is timed too.
    """
    connection.ensure_connection()
    if apps.is_installed("live_matview"):
        with override_settings(LIVE_MATVIEW_REFRESH_MODE=mode):
            return _write(kind, n, customers, products)
    return _write(kind, n, customers, products)


def _write(kind: str, n: int, customers: int, products: int) -> float:
    if kind == "save_txn":
        with stopwatch() as elapsed, transaction.atomic():
            _save_loop(n, customers, products)
    elif kind == "save_autocommit":
        with stopwatch() as elapsed:
            _save_loop(n, customers, products)
    elif kind == "bulk_create":
        objects = [Order(**order_values(i, customers, products)) for i in range(n)]
        with stopwatch() as elapsed:
            Order.objects.bulk_create(objects)
    elif kind == "update":
        with stopwatch() as elapsed:
            Order.objects.update(quantity=F("quantity") + 1)
    elif kind in ("raw_insert", "server_loop"):
        build = _raw_insert_sql if kind == "raw_insert" else _server_loop_sql
        sql = build(n, customers, products)
        with stopwatch() as elapsed, connection.cursor() as cursor:
            cursor.execute(sql)
    else:
        raise ValueError(f"unknown write kind {kind!r}; one of {KINDS}")
    return elapsed.seconds
