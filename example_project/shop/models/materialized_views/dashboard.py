"""Three views, one per way of declaring a query: a QuerySet, a SQL file, and a view on a view.

``CustomerTotals`` is incremental: a write recomputes only the rows of the customers it
touched. The other two are refreshed whole.
"""

from decimal import Decimal

from django.db import models
from django.db.models import Count, F, Max, Sum, Value, Window
from django.db.models.functions import Coalesce, RowNumber

from live_matview import MaterializedViewModel

from ..shop import Customer, Order, OrderLine, Product


class CustomerTotals(MaterializedViewModel):
    """Orders and revenue per customer, from a QuerySet, maintained incrementally.

    ``refresh_on`` as a dict: for each source, the lookup from one of its rows to the
    customer (this view's primary key) that the row feeds. A write then recomputes only
    the rows of the customers it touched (``refresh/by_key``); readers never wait. It is
    stored as a table with this query beside it, which the model reads like any view.
    """

    refresh_on = {Order: "customer", OrderLine: "order__customer"}

    customer = models.OneToOneField(
        Customer, primary_key=True, db_column="customer_id", on_delete=models.DO_NOTHING
    )
    orders = models.IntegerField()
    revenue = models.DecimalField(max_digits=12, decimal_places=2)
    last_order = models.DateField()

    @staticmethod
    def get_query_from_queryset():
        line_total = F("lines__quantity") * F("lines__unit_price")
        return Order.objects.values("customer_id").annotate(
            # Joining the lines repeats each order once per line, hence DISTINCT.
            orders=Count("id", distinct=True),
            revenue=Coalesce(
                Sum(line_total),
                Value(Decimal("0.00")),
                output_field=models.DecimalField(max_digits=12, decimal_places=2),
            ),
            last_order=Max("placed_on"),
        )


class ProductSales(MaterializedViewModel):
    """Units and revenue per product, from ``sql_files/productsales.sql``.

    ``refresh_on = "auto"`` takes the source tables from the SQL as PostgreSQL records it, so
    this list cannot drift from the file. No unique index is declared, so refreshes are plain:
    the refresh log says so, and why.
    """

    refresh_on = "auto"

    product = models.OneToOneField(
        Product, primary_key=True, db_column="product_id", on_delete=models.DO_NOTHING
    )
    sku = models.CharField(max_length=20)
    name = models.CharField(max_length=100)
    orders = models.IntegerField()
    units = models.IntegerField()
    revenue = models.DecimalField(max_digits=12, decimal_places=2)


class TopCustomers(MaterializedViewModel):
    """The three best customers, read from the CustomerTotals view and the customer table.

    Reading CustomerTotals is enough for the library to build and refresh it after its parent,
    and to treat a write to Order or OrderLine as making it stale too. ``refresh_on`` only lists
    what it reads itself: ``Customer``, for the name, so that renaming a customer refreshes it.
    """

    create_pkey_index = True
    refresh_on = [Customer]

    rank = models.IntegerField(primary_key=True)
    customer = models.OneToOneField(Customer, db_column="customer_id", on_delete=models.DO_NOTHING)
    name = models.CharField(max_length=100)
    revenue = models.DecimalField(max_digits=12, decimal_places=2)

    @staticmethod
    def get_query_from_queryset():
        ranking = Window(RowNumber(), order_by=[F("revenue").desc(), F("customer_id").asc()])
        # A LIMIT rather than filter(rank__lte=3): Django 4.2 renames the columns of a
        # query that filters on a window function, and a view's columns must keep their names.
        return (
            CustomerTotals.objects.annotate(rank=ranking)
            .order_by("-revenue", "customer_id")
            .values("rank", "customer_id", "revenue", name=F("customer__name"))[:3]
        )
