"""``./manage.py demo``: the README quickstart, from an empty database to a live dashboard.

It explains each step as it goes, so that its output alone shows what the library does:
writes of every kind, each followed by the dashboard rows it changed (already fresh: the
commit refreshed them) and the refreshes that commit ran. Running it again resets the demo
data; the views, already up to date, are left alone.
"""

from __future__ import annotations

import io
import math
import os
import random
import re
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.db.models import F

from live_matview import deferred_refresh, embedded
from live_matview.testing import RefreshRecorder, capture_refreshes

from ...models import (
    Customer,
    CustomerTotals,
    Order,
    OrderLine,
    Product,
    ProductSales,
    TopCustomers,
)

#: Parents before children: TopCustomers reads CustomerTotals, so it is refreshed after it.
VIEWS = [CustomerTotals, ProductSales, TopCustomers]

CUSTOMERS = [
    "Ada Lovelace",
    "Alan Turing",
    "Barbara Liskov",
    "Donald Knuth",
    "Edsger Dijkstra",
    "Grace Hopper",
    "Ken Thompson",
    "Margaret Hamilton",
]
PRODUCTS = [
    ("ESP-01", "Espresso machine", "299.00"),
    ("GRN-01", "Burr grinder", "129.00"),
    ("BNS-1K", "Coffee beans 1 kg", "24.50"),
    ("CUP-02", "Cup pair", "18.00"),
    ("FLT-100", "Paper filters", "4.90"),
    ("FRT-01", "Milk frother", "39.00"),  # never ordered: shows the SQL view's LEFT JOIN
]
ORDERS = 30
FIRST_DAY = date(2025, 3, 3)
SEED = 2025  # fixed, so every run writes the same rows and prints the same dashboard

#: The dashboard as the demo prints it: (view, row key) -> {column: value as printed}.
Snapshot = dict[tuple[str, str], dict[str, str]]


class Rollback(Exception):
    """Raised inside ``atomic()`` to roll the demo's last transaction back."""


class Command(BaseCommand):
    help = "Runs the live_matview demo: builds the shop's views, writes orders, shows the views."

    def handle(self, *args: Any, **options: Any) -> None:
        self.step = 0
        self.writes = 0
        self.stale: list[str] = []  # views that differed from their query after a write
        self.say(
            "live_matview demo: a coffee shop whose dashboard is three materialized views.",
            indent=0,
        )
        self.say(
            "CustomerTotals is incremental: a write recomputes only the rows of the customers "
            "it touched (by key).",
            indent=0,
        )

        self.heading("Creating the tables and the materialized views (migrate_with_views)")
        self.migrate()

        self.heading("Writing the demo data in one transaction; its commit refreshes the views")
        with capture_refreshes() as refreshes, transaction.atomic():
            self.clear_demo_data()
            self.write_demo_data()
        self.print_refresh_log(refreshes)

        self.heading("The dashboard, read from the views: already fresh, no refresh() called")
        self.print_dashboard()

        self.heading("Writes of each kind, each followed by the dashboard rows it changed")
        self.show_writes()

        self.heading("Batching, and a rollback")
        self.show_batching()
        self.say_freshness()

        self.heading("Where the data lives")
        self.print_server()

    # -- steps ---------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Run migrate_with_views, showing its view report but only a count of migrations."""
        output = io.StringIO()
        call_command("migrate_with_views", verbosity=1, interactive=False, stdout=output)
        lines = output.getvalue().splitlines()
        applied = sum(line.strip().startswith("Applying ") for line in lines)
        self.say(f"{applied} migrations applied." if applied else "Tables already up to date.")
        if "Materialized views:" in lines:
            for line in _grouped(lines[lines.index("Materialized views:") :]):
                self.say(line.strip(), indent=4 if line.startswith(" ") else 2)

    def clear_demo_data(self) -> None:
        # Lines first: Product is protected from deletion while lines point to it.
        lines = OrderLine.objects.all().delete()[0]
        orders = Order.objects.all().delete()[0]
        customers = Customer.objects.all().delete()[0]
        products = Product.objects.all().delete()[0]
        if lines or orders or customers or products:
            self.say(
                f"Cleared the previous run: {orders} orders, {lines} order lines, "
                f"{customers} customers, {products} products."
            )

    def write_demo_data(self) -> None:
        rng = random.Random(SEED)
        customers = Customer.objects.bulk_create(
            Customer(name=name, email=f"{name.split()[0].lower()}@example.com")
            for name in CUSTOMERS
        )
        products = Product.objects.bulk_create(
            Product(sku=sku, name=name, price=Decimal(price)) for sku, name, price in PRODUCTS
        )
        orders = Order.objects.bulk_create(
            Order(customer=rng.choice(customers), placed_on=FIRST_DAY + timedelta(days=day))
            for day in range(ORDERS)
        )
        lines = OrderLine.objects.bulk_create(
            OrderLine(
                order=order, product=product, quantity=rng.randint(1, 4), unit_price=product.price
            )
            for order in orders
            for product in rng.sample(products[:-1], rng.randint(1, 3))
        )
        self.say(
            f"Wrote {len(customers)} customers, {len(products)} products, "
            f"{len(orders)} orders with {len(lines)} order lines. The commit refreshed:"
        )

    def print_refresh_log(self, refreshes: RefreshRecorder) -> None:
        """One line per refresh, from its log row: how it ran, how long it took, and why."""
        width = max(len(view._meta.label) for view in VIEWS)
        for view, log in refreshes.refreshed:
            mode = _how(log)
            milliseconds = log.duration.total_seconds() * 1000 if log.duration else 0.0
            self.say(
                f"{view._meta.label:<{width}}  {mode:<12} {milliseconds:5.1f} ms  ({log.reason})"
            )
        for view, log in refreshes.failed:
            self.say(f"{view._meta.label:<{width}}  FAILED: {log.error}")

    def print_dashboard(self) -> None:
        customer_rows = CustomerTotals.objects.select_related("customer").order_by("-revenue")
        self.table(
            "Customer totals (CustomerTotals: a QuerySet, incremental)",
            ["customer", "orders", "revenue", "last order"],
            [[r.customer.name, r.orders, r.revenue, r.last_order] for r in customer_rows],
        )
        for customer in Customer.objects.filter(orders__isnull=True).order_by("name"):
            self.say(f"({customer.name} has not ordered yet, so has no row.)", indent=4)
        self.table(
            "Product sales (ProductSales: sql_files/productsales.sql)",
            ["sku", "product", "orders", "units", "revenue"],
            [
                [r.sku, r.name, r.orders, r.units, r.revenue]
                for r in ProductSales.objects.order_by("-revenue", "sku")
            ],
        )
        self.table(
            "Top customers (TopCustomers: a QuerySet on CustomerTotals)",
            ["rank", "customer", "revenue"],
            [[r.rank, r.name, r.revenue] for r in TopCustomers.objects.order_by("rank")],
        )

    def show_writes(self) -> None:
        """One write of each kind; each is its own commit (autocommit unless it says so)."""
        edsger = Customer.objects.get(name="Edsger Dijkstra")
        espresso = Product.objects.get(sku="ESP-01")
        beans = Product.objects.get(sku="BNS-1K")
        frother = Product.objects.get(sku="FRT-01")
        day = FIRST_DAY + timedelta(days=ORDERS)

        order = self.write(
            "a. Order.objects.create(): Edsger Dijkstra's first order, no lines yet.",
            lambda: Order.objects.create(customer=edsger, placed_on=day),
        )

        def rename() -> None:
            turing = Customer.objects.get(name="Alan Turing")
            turing.name = "Alan M. Turing"
            turing.save()

        self.write(
            "b. Customer.save(): Alan Turing renamed; only TopCustomers shows names.", rename
        )

        # Just enough espresso machines to push Edsger into the top three.
        third = TopCustomers.objects.get(rank=3).revenue
        machines = math.floor((third - 2 * beans.price) / espresso.price) + 1

        def big_order() -> None:
            with transaction.atomic():
                for product, quantity in ((espresso, machines), (beans, 2)):
                    OrderLine.objects.create(
                        order=order, product=product, quantity=quantity, unit_price=product.price
                    )
                order.placed_on = day + timedelta(days=1)
                order.save()

        self.write(
            f"c. transaction.atomic(): {machines} espresso machines, 2 kg of beans, a new date: "
            "3 writes, 1 commit.",
            big_order,
        )
        self.write(
            "d. QuerySet.update(): one more machine, quantity=F('quantity') + 1.",
            lambda: OrderLine.objects.filter(order=order, product=espresso).update(
                quantity=F("quantity") + 1
            ),
        )
        latest = Order.objects.exclude(pk=order.pk).order_by("-placed_on")[:20]
        self.write(
            "e. bulk_create(): a free milk frother in each of the 20 latest orders, 20 rows.",
            lambda: OrderLine.objects.bulk_create(
                OrderLine(order=each, product=frother, quantity=1, unit_price=Decimal("0.00"))
                for each in latest
            ),
        )

        def raw_sql() -> None:
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE shop_product SET name = name || ' (100)' WHERE sku = %s", ["FLT-100"]
                )

        self.write(
            "f. Raw SQL, connection.cursor(): UPDATE shop_product, read by ProductSales (auto).",
            raw_sql,
        )
        self.write("g. delete(): Edsger's order, and its lines with it (CASCADE).", order.delete)

    def show_batching(self) -> None:
        barbara = Customer.objects.get(name="Barbara Liskov")
        beans = Product.objects.get(sku="BNS-1K")
        first = FIRST_DAY + timedelta(days=ORDERS + 7)

        @deferred_refresh()
        def weekly_beans() -> None:
            for week in range(5):
                order = Order.objects.create(
                    customer=barbara, placed_on=first + timedelta(weeks=week)
                )
                OrderLine.objects.create(
                    order=order, product=beans, quantity=1, unit_price=beans.price
                )

        self.write(
            "with deferred_refresh(): Barbara Liskov orders beans weekly: 10 saves, 10 commits.",
            weekly_beans,
        )

        def rolled_back() -> None:
            try:
                with transaction.atomic():
                    Order.objects.create(customer=barbara, placed_on=first)
                    raise Rollback
            except Rollback:
                pass

        self.write(
            "with transaction.atomic(): an order, then an exception: rolled back.", rolled_back
        )

    def write(self, description: str, action: Callable[[], Any]) -> Any:
        """Run one write, then print the refreshes it caused and the dashboard rows it changed.

        The refreshes ran on commit, before control came back from ``action()``: the rows
        read right after it are fresh, with nothing to wait for or call.
        """
        self.say(description)
        before = self.snapshot()
        with capture_refreshes() as refreshes:
            result = action()
        after = self.snapshot()
        self.writes += 1
        self.check_fresh()
        self.say(self.refresh_summary(refreshes), indent=5)
        for view, key in sorted({**before, **after}, key=_row_order):
            old, new = before.get((view, key)), after.get((view, key))
            if _columns(view, old) != _columns(view, new):
                self.say(f"{view:<14} {_describe(view, key, old, new)}", indent=5)
        return result

    def say_freshness(self) -> None:
        if self.stale:
            self.say(f"STALE after a write (the view differed from its query): {self.stale}")
        else:
            self.say(
                f"After each of these {self.writes} writes, every view equalled its query "
                "(EXCEPT both ways)."
            )

    def print_server(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        self.say(f"PostgreSQL {version} answered.")
        db = connection.settings_dict
        if os.environ.get("DATABASE_URL", "").strip():
            host = db["HOST"] or "the local socket"
            self.say(f"It is the server of DATABASE_URL: {host}:{db['PORT'] or 5432}/{db['NAME']}.")
            return
        info = embedded.status(Path(settings.BASE_DIR) / ".pgdata")
        self.say(f"It is the embedded server in {Path(settings.BASE_DIR).name}/.pgdata,")
        if info is not None and info.owned:
            self.say("started by this command and stopped when it exits.")
        else:
            self.say("which was already running and is left running.")

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def snapshot() -> Snapshot:
        """Every row of every view, as printed. A CustomerTotals row is keyed by customer id
        and shows the customer's name, which comes from the customer table."""
        rows: Snapshot = {}
        for totals in CustomerTotals.objects.select_related("customer"):
            rows["CustomerTotals", str(totals.customer_id)] = {
                "": totals.customer.name,
                "orders": _format(totals.orders),
                "revenue": _format(totals.revenue),
            }
        for sales in ProductSales.objects.all():
            rows["ProductSales", sales.sku] = {
                "name": sales.name,
                "orders": _format(sales.orders),
                "units": _format(sales.units),
                "revenue": _format(sales.revenue),
            }
        for top in TopCustomers.objects.all():
            rows["TopCustomers", f"#{top.rank}"] = {"": top.name, "revenue": _format(top.revenue)}
        return rows

    def check_fresh(self) -> None:
        """Compare each view with its own query, both ways: any difference means stale."""
        with connection.cursor() as cursor:
            for view in VIEWS:
                query, params = view.view_definition()
                table = connection.ops.quote_name(view._meta.db_table)
                cursor.execute(
                    f"SELECT EXISTS (SELECT * FROM {table} EXCEPT ({query}))"
                    f" OR EXISTS (({query}) EXCEPT SELECT * FROM {table})",
                    [*params, *params],
                )
                if cursor.fetchone()[0] and view._meta.label not in self.stale:
                    self.stale.append(view._meta.label)

    @staticmethod
    def refresh_summary(refreshes: RefreshRecorder) -> str:
        """``-> 2 refreshes: CustomerTotals by key (1), TopCustomers CONCURRENTLY``."""
        done = [f"{view.__name__} {_how(log)}" for view, log in refreshes.refreshed]
        done += [f"{view.__name__} FAILED ({log.error})" for view, log in refreshes.failed]
        count = len(refreshes.refreshed)
        summary = f"-> {count} refresh{'' if count == 1 else 'es'}"
        return f"{summary}: {', '.join(done)}" if done else summary

    def heading(self, text: str) -> None:
        self.step += 1
        self.say("")
        self.say(f"{self.step}. {text}", indent=0)

    def say(self, text: str, indent: int = 2) -> None:
        self.stdout.write(" " * indent + text if text else "")

    def table(self, title: str, headers: list[str], rows: list[list[Any]]) -> None:
        """Print rows as an aligned text table: numbers right-aligned, money with 2 decimals."""
        cells = [[_format(value) for value in row] for row in rows]
        widths = [
            max(len(str(col)) for col in column) for column in zip(headers, *cells, strict=True)
        ]
        numeric = [
            bool(rows) and all(isinstance(row[i], int | Decimal) for row in rows)
            for i in range(len(headers))
        ]

        def line(values: list[str]) -> str:
            return "  ".join(
                value.rjust(width) if right else value.ljust(width)
                for value, width, right in zip(values, widths, numeric, strict=True)
            ).rstrip()

        self.say(title)
        self.say(line(headers), indent=4)
        for row in cells:
            self.say(line(row), indent=4)


_KEY_TRIGGER = re.compile(r"(\s*capture\s+)key capture trigger (\w+) installed on (\S+)")
_KEY_FUNCTION = re.compile(r"(\s*capture\s+)key capture function for (\S+) written")


def _grouped(lines: list[str]) -> list[str]:
    """The sync's report, with a table's key capture function and its four triggers on
    one line."""
    events: dict[str, list[str]] = {}
    for line in lines:
        match = _KEY_TRIGGER.fullmatch(line)
        if match is not None:
            events.setdefault(match.group(3), []).append(match.group(2))
    out = []
    for line in lines:
        match = _KEY_TRIGGER.fullmatch(line)
        function = _KEY_FUNCTION.fullmatch(line)
        if function is not None and function.group(2) in events:
            continue  # said with its triggers
        if match is None:
            out.append(line)
        elif match.group(2) == events[match.group(3)][0]:
            prefix, _event, table = match.groups()
            out.append(
                f"{prefix}key capture function and triggers ({', '.join(events[table])}) on {table}"
            )
    return out


def _how(log: Any) -> str:
    """How a refresh ran: ``by key (2)`` (an incremental view, 2 keys), ``full rebuild``,
    ``CONCURRENTLY`` or ``plain``."""
    if log.kind == "by_key":
        return f"by key ({log.keys})"
    if log.concurrently is None:
        return "full rebuild"
    return "CONCURRENTLY" if log.concurrently else "plain"


def _row_order(key: tuple[str, str]) -> tuple[int, int, str]:
    view, row = key
    return [v.__name__ for v in VIEWS].index(view), len(row), row


def _columns(view: str, values: dict[str, str] | None) -> dict[str, str] | None:
    """The view's own columns of a row: a customer's name is read from the customer table."""
    if values is None or view != "CustomerTotals":
        return values
    return {name: value for name, value in values.items() if name}


def _describe(view: str, key: str, old: dict[str, str] | None, new: dict[str, str] | None) -> str:
    """One changed row, with only its changed columns: ``ESP-01: units 30 -> 31, ...``.

    A CustomerTotals row is named by its customer's name, ProductSales by its sku,
    TopCustomers by its rank.
    """
    values = new or old or {}
    if view == "CustomerTotals":
        key = values[""]
    values = _columns(view, values) or {}
    if old is None or new is None:
        shown = ", ".join(f"{name} {value}".strip() for name, value in values.items())
        return f"{key}: new row, {shown}" if old is None else f"{key}: row gone, was {shown}"
    changes = [
        f"{name} {old[name]} -> {new[name]}".strip() for name in values if old[name] != new[name]
    ]
    return f"{key}: {', '.join(changes)}"


def _format(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
