from .materialized_views import (
    BigSpenders,
    CustomerTotals,
    IndexedOrders,
    ItemSales,
    MixedCaseView,
    QuotedNameView,
    SchemaView,
    SkuPrefixCounts,
)
from .shop import Customer, Item, Order

__all__ = [
    "BigSpenders",
    "Customer",
    "CustomerTotals",
    "IndexedOrders",
    "Item",
    "ItemSales",
    "MixedCaseView",
    "Order",
    "QuotedNameView",
    "SchemaView",
    "SkuPrefixCounts",
]
