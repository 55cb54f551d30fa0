"""``./manage.py demo``: the README quickstart, from an empty database to a live dashboard.

It explains each step as it goes, so that its output alone shows what the library does.
Running it again resets the demo data; the views, already up to date, are left alone.
"""

from __future__ import annotations

import io
import math
import os
import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection, transaction

from live_matview import embedded

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


class Command(BaseCommand):
    help = "Runs the live_matview demo: builds the shop's views, writes orders, shows the views."

    def handle(self, *args: Any, **options: Any) -> None:
        self.step = 0
        self.say(
            "live_matview demo: a coffee shop whose dashboard is three materialized views.",
            indent=0,
        )

        self.heading("Creating the tables and the materialized views (migrate_with_views)")
        self.migrate()

        self.heading("Writing the demo data")
        with transaction.atomic():  # one transaction: later, one refresh per view on commit
            self.clear_demo_data()
            self.write_demo_data()

        # Explicit for now; once views refresh on commit, this step only reports what the
        # commit above already did (see bring_views_up_to_date).
        self.heading("Refreshing the views, parents before children")
        self.bring_views_up_to_date()

        self.heading("The dashboard, read from the views")
        self.print_dashboard()

        self.heading("One more order, to show the views follow the writes")
        customer, product, before = self.write_one_order()
        self.bring_views_up_to_date()
        self.print_changes(customer, product, before)

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
            for line in lines[lines.index("Materialized views:") :]:
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
            f"{len(orders)} orders with {len(lines)} order lines, in one transaction."
        )

    def bring_views_up_to_date(self) -> None:
        """Refresh every view explicitly and say how each refresh ran, from its log row.

        Refresh on commit will make this step unnecessary: the commit of the writes above
        will already have refreshed the views, so this becomes "print the refresh log rows
        that the commit wrote" and the dashboard reads views that are already fresh.
        """
        width = max(len(view._meta.label) for view in VIEWS)
        for view in VIEWS:
            log = view.refresh()
            mode = "CONCURRENTLY" if log.concurrently else "plain"
            milliseconds = log.duration.total_seconds() * 1000 if log.duration else 0.0
            self.say(
                f"{view._meta.label:<{width}}  {mode:<12} {milliseconds:5.1f} ms  ({log.reason})"
            )

    def print_dashboard(self) -> None:
        customer_rows = CustomerTotals.objects.select_related("customer").order_by("-revenue")
        self.table(
            "Customer totals (CustomerTotals: a QuerySet)",
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
        self.print_top_customers()

    def print_top_customers(self) -> None:
        self.table(
            "Top customers (TopCustomers: a QuerySet on CustomerTotals)",
            ["rank", "customer", "revenue"],
            [[r.rank, r.name, r.revenue] for r in TopCustomers.objects.order_by("rank")],
        )

    def write_one_order(self) -> tuple[Customer, Product, dict[str, list[Any]]]:
        """The customer with the lowest revenue buys just enough espresso machines to lead."""
        last = CustomerTotals.objects.select_related("customer").order_by("revenue").first()
        top = CustomerTotals.objects.order_by("-revenue").first()
        assert last is not None, "the demo data has orders"
        assert top is not None, "the demo data has orders"
        product = Product.objects.get(sku="ESP-01")
        before = self.changed_rows(last.customer, product)
        quantity = math.floor((top.revenue - last.revenue) / product.price) + 1
        with transaction.atomic():
            order = Order.objects.create(
                customer=last.customer, placed_on=FIRST_DAY + timedelta(days=ORDERS)
            )
            OrderLine.objects.create(
                order=order, product=product, quantity=quantity, unit_price=product.price
            )
        self.say(
            f"{last.customer.name} orders {quantity} x {product.name} "
            f"({quantity * product.price:,.2f}); the views are stale now."
        )
        return last.customer, product, before

    def print_changes(
        self, customer: Customer, product: Product, before: dict[str, list[Any]]
    ) -> None:
        after = self.changed_rows(customer, product)
        self.table(
            "Changed rows, before and after",
            ["", "view", "row", "orders", "revenue"],
            [
                [when, *row]
                for key in before
                for when, row in (("before", before[key]), ("after", after[key]))
            ],
        )
        self.print_top_customers()

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
    def changed_rows(customer: Customer, product: Product) -> dict[str, list[Any]]:
        """The dashboard rows the extra order changes, to show them before and after."""
        totals = CustomerTotals.objects.get(customer=customer)
        sales = ProductSales.objects.get(product=product)
        return {
            "customer": ["CustomerTotals", customer.name, totals.orders, totals.revenue],
            "product": ["ProductSales", product.name, sales.orders, sales.revenue],
        }

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


def _format(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
