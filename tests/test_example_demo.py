"""The README's demo (example_project's ``manage.py demo``) runs, twice, and says what it did:
writes of each kind, each refreshing the views it made stale once, on commit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.helpers import database_url

MANAGE_PY = Path(__file__).resolve().parent.parent / "example_project" / "manage.py"

#: CustomerTotals is incremental: refreshed by key, with the number of keys a write touched.
CT, PS, TOP = "CustomerTotals by key (1)", "ProductSales plain", "TopCustomers CONCURRENTLY"

#: Each write of the demo (the start of its line) and the refreshes it must cause, in order.
EXPECTED_REFRESHES = {
    "a. Order.objects.create()": [CT, TOP],  # ProductSales does not read shop_order
    "b. Customer.save()": [TOP],  # only TopCustomers reads shop_customer
    "c. transaction.atomic()": [CT, PS, TOP],  # 3 writes, 2 tables, 1 commit
    "d. QuerySet.update()": [CT, PS, TOP],
    # 20 free lines in the orders of 6 customers: their totals are unchanged, so the
    # by-key refresh changes no row and TopCustomers, built on it, is not refreshed.
    "e. bulk_create()": ["CustomerTotals by key (6)", PS],
    "f. Raw SQL": [PS],  # shop_product: only ProductSales ("auto") reads it
    "g. delete()": [CT, PS, TOP],  # the order and its lines, in one transaction
    "with deferred_refresh()": [CT, PS, TOP],  # 10 autocommit saves
    "with transaction.atomic(): an order, then an exception": [],  # rolled back
}


@pytest.fixture
def demo_database_url(django_db_blocker) -> Iterator[str]:
    """A scratch database of its own: the demo runs migrate_with_views and must own it."""
    dbname = f"example_demo_{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield database_url(dbname)
    finally:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def run_demo(database_url: str) -> str:
    # pytest-django exported DJANGO_SETTINGS_MODULE=tests.settings; manage.py must pick its own.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, str(MANAGE_PY), "demo"],
        env={**env, "DATABASE_URL": database_url},
        cwd="/",  # manage.py must find its own packages from any directory
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A failed refresh never reaches the writer: it is only logged. None may happen here.
    assert "Traceback" not in result.stderr, result.stderr
    assert "failed" not in result.stderr.lower(), result.stderr
    return result.stdout


def refreshes_by_write(output: str) -> dict[str, list[str]]:
    """Each write's description line -> the refreshes listed on the ``-> N refreshes`` line
    under it; the count printed must match the list."""
    found = {}
    lines = output.splitlines()
    for description, summary in zip(lines, lines[1:], strict=False):
        match = re.fullmatch(r" {5}-> (\d+) refresh(?:es)?(?:: (.*))?", summary)
        if match is None:
            continue
        views = match.group(2).split(", ") if match.group(2) else []
        assert int(match.group(1)) == len(views), summary
        found[description.strip()] = views
    return found


def dashboard(output: str) -> list[str]:
    """Everything from the dashboard heading on, but refresh timings (none are printed there)."""
    lines = output.split("3. The dashboard")[1].splitlines()
    return [line for line in lines if " ms  (" not in line]


def test_demo_runs_twice_and_shows_the_views_following_the_writes(demo_database_url) -> None:
    first = run_demo(demo_database_url)
    assert "create   shop_customertotals (shop.CustomerTotals): does not exist" in first
    # The demo data: one transaction, so one refresh per view, parents before children.
    loaded = first.split("2. Writing the demo data")[1].split("\n3. ")[0]
    assert re.findall(r"shop\.\w+ +(?:CONCURRENTLY|plain|by key \(\d+\))", loaded) == [
        "shop.CustomerTotals  by key (7)",  # the 7 customers who ordered
        "shop.ProductSales    plain",
        "shop.TopCustomers    CONCURRENTLY",
    ]
    assert "CustomerTotals is incremental" in first
    assert "refresh function for shop_customertotals written" in first
    assert "(no unique index usable by CONCURRENTLY)" in loaded
    assert "(populated, with a unique index)" in loaded

    # Every kind of write, each with exactly the refreshes it should cause.
    by_write = refreshes_by_write(first)
    assert len(by_write) == len(EXPECTED_REFRESHES), by_write
    for start, expected in EXPECTED_REFRESHES.items():
        (got,) = [views for line, views in by_write.items() if line.startswith(start)]
        assert got == expected, (start, got)

    # The rows read right after each write show it: the views were fresh on return.
    for changed in [
        "CustomerTotals Edsger Dijkstra: new row, orders 1, revenue 0.00",
        "TopCustomers   #1: Alan Turing -> Alan M. Turing",
        "TopCustomers   #3: Ken Thompson -> Edsger Dijkstra, revenue 2,303.30 -> 2,441.00",
        "ProductSales   ESP-01: units 38 -> 39, revenue 11,362.00 -> 11,661.00",
        "ProductSales   FRT-01: orders 0 -> 20, units 0 -> 20",
        "ProductSales   FLT-100: name Paper filters -> Paper filters (100)",
        "CustomerTotals Edsger Dijkstra: row gone, was orders 1, revenue 2,740.00",
        "CustomerTotals Barbara Liskov: orders 1 -> 6, revenue 570.00 -> 692.50",
    ]:
        assert f"     {changed}\n" in first, changed
    assert "After each of these 9 writes, every view equalled its query" in first
    assert "STALE" not in first
    assert "6. Where the data lives" in first
    assert "It is the server of DATABASE_URL" in first
    assert len(first.splitlines()) < 90

    second = run_demo(demo_database_url)
    assert "Tables already up to date." in second
    assert "No changes." in second  # the views were left alone
    assert "Cleared the previous run: 35 orders, 88 order lines" in second
    assert refreshes_by_write(second) == by_write
    # Same data, same writes, same dashboard.
    assert dashboard(second) == dashboard(first)
    assert len(second.splitlines()) < 90
