"""Scenario 7's source tables: accounts, their sales, and the sales' lines.

Three copies of sales and lines with the same rows: ``Plain*`` are read by no view (the
baseline process writes them, with no trigger on them at all), ``Full*`` by a
full-refresh view and ``Inc*`` by an incremental view (both in ``benchviews``). Separate
tables let one process run both views' writes without one write refreshing the other
view, and no variant's writes leave dead rows in another's table.

No migrations: ``migrate --run-syncdb`` creates the tables. Accounts are only read, so
the three copies share them.
"""

from django.db import models


class Account(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class _Sale(models.Model):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"sale {self.pk}"


class _Line(models.Model):
    quantity = models.IntegerField()
    price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"line {self.pk}"


class PlainSale(_Sale):  # noqa: DJ008  (inherited)
    pass


class PlainLine(_Line):  # noqa: DJ008  (inherited)
    sale = models.ForeignKey(PlainSale, on_delete=models.CASCADE, related_name="lines")


class FullSale(_Sale):  # noqa: DJ008  (inherited)
    pass


class FullLine(_Line):  # noqa: DJ008  (inherited)
    sale = models.ForeignKey(FullSale, on_delete=models.CASCADE, related_name="lines")


class IncSale(_Sale):  # noqa: DJ008  (inherited)
    pass


class IncLine(_Line):  # noqa: DJ008  (inherited)
    sale = models.ForeignKey(IncSale, on_delete=models.CASCADE, related_name="lines")


#: Per variant of scenario 7: (sale model, line model).
TABLES = {"plain": (PlainSale, PlainLine), "full": (FullSale, FullLine), "inc": (IncSale, IncLine)}
