"""Three source models of two views, as in SPEC §6 (coalescing over 3 models of 2 views).

No migrations: ``migrate --run-syncdb`` creates the tables, and the capture trigger is
installed by ``migrate_with_views``' sync (it installs triggers a migration did not).
"""

from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2, default=0)

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    quantity = models.IntegerField(default=1)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"order {self.pk}"


class Tiny(models.Model):
    """The source of scenario 3's 100 tiny views (``group`` says which view reads a row)."""

    group = models.IntegerField()
    value = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"tiny {self.pk}"
