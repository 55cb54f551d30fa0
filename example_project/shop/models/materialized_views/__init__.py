"""The dashboard's materialized views; their SQL files are in ``sql_files/`` next to this."""

from .dashboard import CustomerTotals, ProductSales, TopCustomers

__all__ = ["CustomerTotals", "ProductSales", "TopCustomers"]
