"""Scenario 7's data: accounts, sales and lines, in three identical copies (plain, full,
inc), loaded and reset server-side, never inside a timed part.

Line ``g`` belongs to sale ``(g - 1) // 10 + 1`` and sale ``s`` to account
``(s - 1) // 10 + 1``: ten lines a sale, a hundred an account, and a range of line ids
touches the same share of the accounts (a change of 1 % of the lines dirties 1 % of the
view's keys).
"""

from __future__ import annotations

from .database import Admin

ACCOUNT = "benchledger_account"
COPIES = ("plain", "full", "inc")
VIEWS = {"full": "benchviews_fullaccounttotals", "inc": "benchviews_incaccounttotals"}
LINES_PER_SALE = 10
SALES_PER_ACCOUNT = 10
MARK_TABLES = ("live_matview_dirtymark", "live_matview_keymark")


def sale_table(copy: str) -> str:
    return f"benchledger_{copy}sale"


def line_table(copy: str) -> str:
    return f"benchledger_{copy}line"


def shape(lines: int) -> tuple[int, int]:
    """(sales, accounts) for ``lines`` lines."""
    sales = max(1, -(-lines // LINES_PER_SALE))
    return sales, max(1, -(-sales // SALES_PER_ACCOUNT))


class Ledger:
    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        self.lines = 0

    def load(self, lines: int) -> None:
        """Every copy from scratch with ``lines`` lines, views populated, all vacuumed.

        Loaded with ``session_replication_role = replica``: no trigger fires (no marks to
        clear) and no foreign key is checked row by row; the rows are valid by
        construction."""
        sales, accounts = shape(lines)
        tables = [ACCOUNT] + [t for c in COPIES for t in (sale_table(c), line_table(c))]
        self.admin.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        self.admin.execute("SET session_replication_role = replica")
        try:
            self.admin.execute(
                f"INSERT INTO {ACCOUNT} (name) SELECT 'account ' || g "
                "FROM generate_series(1, %s) AS g",
                [accounts],
            )
            for copy in COPIES:
                self.admin.execute(
                    f"INSERT INTO {sale_table(copy)} (account_id, created) "
                    f"SELECT (g - 1) / {SALES_PER_ACCOUNT} + 1, now() "
                    "FROM generate_series(1, %s) AS g",
                    [sales],
                )
                self.admin.execute(
                    f"INSERT INTO {line_table(copy)} (sale_id, quantity, price) "
                    f"SELECT (g - 1) / {LINES_PER_SALE} + 1, 1 + g %% 5, "
                    "((g * 37) %% 10000) / 100.0 FROM generate_series(1, %s) AS g",
                    [lines],
                )
        finally:
            self.admin.execute("SET session_replication_role = DEFAULT")
        for copy in COPIES:
            for table in (sale_table(copy), line_table(copy)):
                self.admin.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                )
        self.lines = lines
        self.vacuum(*tables)
        self.rebuild_views()

    def rebuild_views(self) -> None:
        """Both views equal their query, no marks left (not timed)."""
        self.admin.execute(f'REFRESH MATERIALIZED VIEW "{VIEWS["full"]}"')
        inc = VIEWS["inc"]
        self.admin.execute(f'DELETE FROM "{inc}"')
        self.admin.execute(f'INSERT INTO "{inc}" SELECT * FROM "{inc}_lmv_query"')
        self.clear_marks()
        self.vacuum(*VIEWS.values())

    def clear_marks(self) -> None:
        for table in MARK_TABLES:
            self.admin.execute(f"TRUNCATE {table}")

    def vacuum(self, *tables: str) -> None:
        for table in tables:
            self.admin.execute(f'VACUUM ANALYZE "{table}"')

    def after_bulk(self, table: str) -> None:
        """A bulk change leaves dead rows behind: vacuum the written table and the views."""
        self.clear_marks()
        self.vacuum(table, *VIEWS.values())
