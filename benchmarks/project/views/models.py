"""Aggregate views, each with a unique primary key (so CONCURRENTLY is possible).

``CustomerTotals`` reads orders and customers, ``ProductSales`` orders and products: a
write to orders dirties both, a write to customers or products one each. Scenario
7's ``FullAccountTotals`` and ``IncAccountTotals`` run one query over two copies of the
ledger tables, refreshed fully and by key.

And 100 tiny views over ``Tiny`` (scenario 3's pass over many dirty views, where the
library's cost per refresh, not the REFRESH, is what is measured).
"""

from django.db import models
from django.db.models import Count, F, Sum

from benchmarks.project.ledger.models import Account, FullLine, FullSale, IncLine, IncSale
from benchmarks.project.shop.models import Customer, Order, Product, Tiny
from live_matview import MaterializedViewModel


class CustomerTotals(MaterializedViewModel):
    create_pkey_index = True
    refresh_on = [Order, Customer]

    customer = models.OneToOneField(
        Customer, primary_key=True, db_column="customer_id", on_delete=models.DO_NOTHING
    )
    orders = models.IntegerField()
    total = models.DecimalField(max_digits=14, decimal_places=2)

    @staticmethod
    def get_query_from_queryset():
        return Order.objects.values("customer_id").annotate(orders=Count("id"), total=Sum("amount"))


class ProductSales(MaterializedViewModel):
    create_pkey_index = True
    refresh_on = [Order, Product]

    product = models.OneToOneField(
        Product, primary_key=True, db_column="product_id", on_delete=models.DO_NOTHING
    )
    sold = models.IntegerField()
    revenue = models.DecimalField(max_digits=14, decimal_places=2)

    @staticmethod
    def get_query_from_queryset():
        return Order.objects.values("product_id").annotate(
            sold=Sum("quantity"), revenue=Sum("amount")
        )


def _account_totals(line_model):
    """Per account: its sales, their lines, units and revenue (scenario 7)."""
    return (
        line_model.objects.values(account_id=F("sale__account_id"))
        .annotate(
            sales=Count("sale_id", distinct=True),
            lines=Count("id"),
            units=Sum("quantity"),
            revenue=Sum(F("quantity") * F("price")),
        )
        .order_by()
    )


class _AccountTotals(MaterializedViewModel):
    account = models.OneToOneField(
        Account,
        primary_key=True,
        db_column="account_id",
        related_name="+",
        on_delete=models.DO_NOTHING,
    )
    sales = models.IntegerField()
    lines = models.IntegerField()
    units = models.BigIntegerField()
    revenue = models.DecimalField(max_digits=20, decimal_places=2)

    class Meta:
        abstract = True


class FullAccountTotals(_AccountTotals):
    """Refreshed whole after every write (REFRESH ... CONCURRENTLY)."""

    create_pkey_index = True
    refresh_on = [FullSale, FullLine]

    @staticmethod
    def get_query_from_queryset():
        return _account_totals(FullLine)


class IncAccountTotals(_AccountTotals):
    """The same query over its own copy of the tables, refreshed by key."""

    refresh_on = {IncSale: "account", IncLine: "sale__account"}

    @staticmethod
    def get_query_from_queryset():
        return _account_totals(IncLine)


TINY_VIEWS = 100


def _tiny_view(number: int) -> type[MaterializedViewModel]:
    def query():  # type: ignore[no-untyped-def]
        return Tiny.objects.filter(group=number).values("id", "value")

    return type(
        f"Tiny{number:03d}",
        (MaterializedViewModel,),
        {
            "__module__": __name__,
            "create_pkey_index": True,
            "refresh_on": [Tiny],
            "id": models.BigIntegerField(primary_key=True),
            "value": models.IntegerField(),
            "get_query_from_queryset": staticmethod(query),
        },
    )


TINY = [_tiny_view(number) for number in range(TINY_VIEWS)]
