from .materialized_views import (
    BigSpenders,
    CustomerTotals,
    IndexedOrders,
    ItemSales,
    MixedCaseView,
    OrderItemStats,
    OrderTagCounts,
    QuotedNameView,
    SchemaView,
    SkuPrefixCounts,
)
from .shop import Customer, Item, Order, Tag

__all__ = [
    "BigSpenders",
    "Customer",
    "CustomerTotals",
    "IndexedOrders",
    "Item",
    "ItemSales",
    "MixedCaseView",
    "Order",
    "OrderItemStats",
    "OrderTagCounts",
    "QuotedNameView",
    "SchemaView",
    "SkuPrefixCounts",
    "Tag",
]
