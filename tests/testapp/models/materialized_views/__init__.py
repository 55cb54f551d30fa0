from django.db import models
from django.db.models import Count, F, Q, Sum

from live_matview import MaterializedViewModel

from ..shop import Customer, Item, Order


class CustomerTotals(MaterializedViewModel):
    """From a QuerySet, with a unique pk index: refreshed CONCURRENTLY."""

    create_pkey_index = True
    refresh_on = [Order, "testapp.Customer"]

    customer = models.OneToOneField(
        Customer, primary_key=True, db_column="customer_id", on_delete=models.DO_NOTHING
    )
    orders = models.IntegerField()
    total = models.DecimalField(max_digits=14, decimal_places=2)

    @staticmethod
    def get_query_from_queryset():
        return Order.objects.values("customer_id").annotate(orders=Count("id"), total=Sum("amount"))


class BigSpenders(MaterializedViewModel):
    """Reads another view: created and refreshed after CustomerTotals."""

    customer = models.OneToOneField(
        Customer, primary_key=True, db_column="customer_id", on_delete=models.DO_NOTHING
    )
    total = models.DecimalField(max_digits=14, decimal_places=2)

    @classmethod
    def get_query_from_queryset(cls):
        return CustomerTotals.objects.filter(total__gte=100).values("customer_id", "total")


class ItemSales(MaterializedViewModel):
    """From a SQL file, without a unique index: refreshed plainly."""

    refresh_on = "auto"

    sku = models.CharField(max_length=20, primary_key=True)
    quantity = models.IntegerField()


class OrderItemStats(MaterializedViewModel):
    """A SQL-file view joining two tables, sources inferred by PostgreSQL ("auto")."""

    refresh_on = "auto"
    create_pkey_index = True

    customer_id = models.BigIntegerField(primary_key=True)
    items = models.IntegerField()


class OrderTagCounts(MaterializedViewModel):
    """Reads an m2m table: changes to Order.tags must dirty it."""

    refresh_on = [Order]

    order_id = models.BigIntegerField(primary_key=True)
    tags = models.IntegerField()

    @staticmethod
    def get_query_from_queryset():
        return (
            Order.objects.values(order_id=F("id"))
            .annotate(tags=Count("tags"))
            .values("order_id", "tags")
        )


class SlowView(MaterializedViewModel):
    """Refreshed only by the worker; its query sleeps as long as SleepSetting says."""

    refresh_on = [Order]
    refresh_mode = "manual"
    create_pkey_index = True

    order_id = models.BigIntegerField(primary_key=True)


class SkuPrefixCounts(MaterializedViewModel):
    """Parameters with a '%' in a literal: bound by the driver, never pasted."""

    sku = models.CharField(max_length=20, primary_key=True)
    n = models.IntegerField()

    @staticmethod
    def get_query_from_queryset():
        return (
            Item.objects.filter(Q(sku__startswith="A%") | Q(sku__contains="'"))
            .values("sku")
            .annotate(n=Count("id"))
        )


class IndexedOrders(MaterializedViewModel):
    """Meta.indexes and a UniqueConstraint become indexes on the view."""

    order = models.OneToOneField(
        Order, primary_key=True, db_column="order_id", on_delete=models.DO_NOTHING
    )
    customer_id = models.BigIntegerField()
    amount = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        indexes = [models.Index(fields=["customer_id"], name="indexedorders_customer")]
        constraints = [models.UniqueConstraint(fields=["order"], name="indexedorders_order_uniq")]

    @staticmethod
    def get_query_from_queryset():
        return Order.objects.values("customer_id", "amount", order_id=F("id"))


class MixedCaseView(MaterializedViewModel):
    customer_id = models.BigIntegerField(primary_key=True)

    class Meta:
        db_table = "Mixed Case View"

    @staticmethod
    def get_query_from_queryset():
        return Customer.objects.values(customer_id=F("id"))


class QuotedNameView(MaterializedViewModel):
    customer_id = models.BigIntegerField(primary_key=True)
    create_pkey_index = True

    class Meta:
        db_table = '"it""s a view"'

    @staticmethod
    def get_query_from_queryset():
        return Customer.objects.values(customer_id=F("id"))


class SchemaView(MaterializedViewModel):
    customer_id = models.BigIntegerField(primary_key=True)
    create_pkey_index = True

    class Meta:
        db_table = '"reporting"."customer_ids"'

    @staticmethod
    def get_query_from_queryset():
        return Customer.objects.values(customer_id=F("id"))
