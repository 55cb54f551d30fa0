"""django-materialized-view models over the views live_matview created (same names)."""

from django.db import models
from django.db.models import Count, Sum
from django_materialized_view.base_model import MaterializedViewModel

from benchmarks.project.shop.models import Customer, Order, Product


class CustomerTotals(MaterializedViewModel):
    create_pkey_index = True  # its refresh() is CONCURRENTLY exactly when this is set

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
