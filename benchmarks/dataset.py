"""The data set, built and reset server-side between runs (never inside a timed part).

Every measured run starts from the same state: the written table is emptied with
TRUNCATE (a new, empty file: no dead rows or bloat carried over from the previous
variant's run), reloaded where the workload needs rows, vacuumed and analyzed, and the
marks table is emptied, so no variant inherits another's leftovers.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from .database import Admin

CUSTOMER = "benchshop_customer"
PRODUCT = "benchshop_product"
ORDER = "benchshop_order"
VIEWS = ("benchviews_customertotals", "benchviews_productsales")
MARKS = "live_matview_dirtymark"
TRIGGER_PATTERN = "pgtrigger_live_matview_%"

# Same spread as benchmarks.ops.writes.order_values, done by the server.
_INSERT_ORDERS = f"""
INSERT INTO {ORDER} (customer_id, product_id, quantity, amount, created)
SELECT 1 + g %% %(customers)s, 1 + (g * 7) %% %(products)s, 1 + g %% 5,
       ((g * 37) %% 100000) / 100.0, now()
FROM generate_series(%(first)s, %(last)s) AS g
"""


@dataclass(frozen=True)
class Shop:
    customers: int
    products: int
    orders: int


class Dataset:
    """What is loaded now, and the capture triggers' state, as the orchestrator set them."""

    def __init__(self, admin: Admin, *, checkpoints: bool = True) -> None:
        self.admin = admin
        self.checkpoints = checkpoints
        self.shop: Shop | None = None
        self._triggers_enabled: bool | None = None

    # -- capture triggers --------------------------------------------------------------

    def capture_triggers(self) -> list[tuple[str, str]]:
        return [
            (str(table), str(name))
            for table, name in self.admin.rows(
                "SELECT c.relname, t.tgname FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname LIKE %s ORDER BY 1",
                [TRIGGER_PATTERN],
            )
        ]

    def set_triggers(self, enabled: bool) -> None:
        """Trigger mode needs them; the baseline and signals mode run without them."""
        if self._triggers_enabled is enabled:
            return
        action = "ENABLE" if enabled else "DISABLE"
        for table, name in self.capture_triggers():
            self.admin.execute(f'ALTER TABLE "{table}" {action} TRIGGER "{name}"')
        self._triggers_enabled = enabled

    # -- data ----------------------------------------------------------------------------

    def load_shop(self, shop: Shop) -> None:
        """Customers, products and orders from scratch, views populated, all vacuumed."""
        self.admin.execute(f"TRUNCATE {ORDER}, {CUSTOMER}, {PRODUCT} RESTART IDENTITY")
        self.admin.execute(
            f"INSERT INTO {CUSTOMER} (name) SELECT 'customer ' || g "
            "FROM generate_series(1, %s) AS g",
            [shop.customers],
        )
        self.admin.execute(
            f"INSERT INTO {PRODUCT} (name, price) SELECT 'product ' || g, (g %% 50) + 0.99 "
            "FROM generate_series(1, %s) AS g",
            [shop.products],
        )
        self.shop = shop
        self.reset_orders(shop.orders)
        for view in VIEWS:
            self.admin.execute(f'REFRESH MATERIALIZED VIEW "{view}"')
        self.vacuum(CUSTOMER, PRODUCT, *VIEWS)

    def reset_orders(self, rows: int) -> None:
        """The orders table with exactly ``rows`` rows (ids 1..rows), no marks."""
        assert self.shop is not None, "load_shop() first"
        self.admin.execute(f"TRUNCATE {ORDER} RESTART IDENTITY")
        if rows:
            self.insert_orders(1, rows)
        self.clear_marks()
        self.vacuum(ORDER)

    def insert_orders(self, first: int, last: int) -> None:
        assert self.shop is not None, "load_shop() first"
        self.admin.execute(
            _INSERT_ORDERS,
            {
                "customers": self.shop.customers,
                "products": self.shop.products,
                "first": first,
                "last": last,
            },
        )
        self.admin.execute(
            f"SELECT setval(pg_get_serial_sequence('{ORDER}', 'id'), "
            f"(SELECT coalesce(max(id), 0) + 1 FROM {ORDER}), false)"
        )

    def trim_orders(self, keep: int) -> None:
        """Back to the first ``keep`` orders after a write run added some."""
        self.admin.execute(f"DELETE FROM {ORDER} WHERE id > %s", [keep])
        self.admin.execute(
            f"SELECT setval(pg_get_serial_sequence('{ORDER}', 'id'), %s + 1, false)", [keep]
        )
        self.clear_marks()
        self.vacuum(ORDER)

    def clear_marks(self) -> None:
        if self.admin.scalar("SELECT to_regclass(%s) IS NOT NULL", [MARKS]):
            self.admin.execute(f"TRUNCATE {MARKS}")

    def vacuum(self, *tables: str) -> None:
        for table in tables:
            self.admin.execute(f'VACUUM ANALYZE "{table}"')

    def checkpoint(self) -> None:
        """Before a measured run, so the previous run's dirty buffers are not written
        during this one (``--quick`` skips it: a busy server makes it slow)."""
        if not self.checkpoints:
            return
        # A role without the right to CHECKPOINT only makes the runs less steady.
        with contextlib.suppress(Exception):
            self.admin.execute("CHECKPOINT")
