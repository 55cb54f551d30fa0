from django.db import models

from live_matview import MaterializedViewModel


class Region(models.Model):
    name = models.CharField(max_length=50)


class Client(models.Model):
    name = models.CharField(max_length=50)
    region = models.ForeignKey(Region, null=True, blank=True, on_delete=models.SET_NULL)


class Sale(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="sales")
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)


class SaleLine(models.Model):
    sale = models.ForeignKey(Sale, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=20)
    quantity = models.IntegerField(default=1)


class ClientTotals(MaterializedViewModel):
    """Three tables joined; clients without sales have a row of zeros (LEFT JOIN)."""

    refresh_on = {Client: "pk", Sale: "client", "incrementalapp.SaleLine": "sale__client_id"}

    client = models.OneToOneField(
        Client, primary_key=True, db_column="client_id", on_delete=models.DO_NOTHING
    )
    sales = models.IntegerField()
    lines = models.IntegerField()
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    quantity = models.BigIntegerField()


class SkuTotals(MaterializedViewModel):
    """One table, keyed by a text column that is no foreign key."""

    refresh_on = {SaleLine: "sku"}

    sku = models.CharField(max_length=20, primary_key=True)
    lines = models.IntegerField()
    quantity = models.BigIntegerField()

    @staticmethod
    def get_query_from_queryset():
        return SaleLine.objects.values("sku").annotate(
            lines=models.Count("id"), quantity=models.Sum("quantity")
        )


class BigClients(MaterializedViewModel):
    """A full-refresh view built on an incremental one: refreshed after it."""

    create_pkey_index = True

    client = models.OneToOneField(
        Client, primary_key=True, db_column="client_id", on_delete=models.DO_NOTHING
    )
    quantity = models.BigIntegerField()

    @staticmethod
    def get_query_from_queryset():
        return ClientTotals.objects.filter(quantity__gte=10).values("client_id", "quantity")
