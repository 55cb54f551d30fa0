"""A ``models`` package, because view SQL files live in ``models/materialized_views/``."""

from .materialized_views import CustomerTotals, ProductSales, TopCustomers
from .shop import Customer, Order, OrderLine, Product

__all__ = [
    "Customer",
    "CustomerTotals",
    "Order",
    "OrderLine",
    "Product",
    "ProductSales",
    "TopCustomers",
]
