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
    SlowView,
)
from .shop import Customer, Item, Order, SleepSetting, Tag

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
    "SleepSetting",
    "SlowView",
    "Tag",
]
