"""Scenario results and their plain-text tables.

A table is a list of string cells: the scenario decides what to show, this module only
aligns it (text columns left, numbers right) so it reads the same in a terminal, a CI
log and RESULTS.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from . import stats


@dataclass
class Bar:
    """A quality bar of SPEC §6 and whether this run met it (None: not measurable).

    ``outcome`` overrides the yes/no of ``met`` where the spread decides: a ratio whose
    interquartile range straddles the limit is "inconclusive" (``stats.verdict``).
    """

    name: str
    limit: str
    value: str
    met: bool | None
    outcome: str | None = None

    @property
    def verdict(self) -> str:
        if self.outcome is not None:
            return self.outcome
        return {True: "met", False: "MISSED", None: "n/a"}[self.met]

    @classmethod
    def at_most(cls, name: str, limit: float, summary: stats.Summary) -> Bar:
        """A ratio bar judged on the interquartile range of its paired ratios."""
        outcome = stats.verdict(summary, limit)
        return cls(
            name,
            f"≤ {limit:.2f}×",
            ratio_iqr(summary),
            True if outcome == stats.MET else False if outcome == stats.MISSED else None,
            outcome,
        )


@dataclass
class ScenarioResult:
    key: str
    number: int
    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None
    error: str | None = None
    seconds: float | None = None  # wall time of the whole scenario

    @property
    def heading(self) -> str:
        return f"{self.number}. {self.title}"

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["heading"] = self.heading
        return result


def _numeric(cell: str) -> bool:
    head = cell.strip().lstrip("≤≥~+-−")
    return bool(head) and (head[0].isdigit() or head[0] == ".")


def render_table(columns: list[str], rows: list[list[str]]) -> str:
    widths = [len(column) for column in columns]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    numeric = [
        all(_numeric(row[index]) or not row[index].strip() for row in rows) and bool(rows)
        for index in range(len(columns))
    ]

    def line(cells: list[str]) -> str:
        parts = [
            cell.rjust(widths[index]) if numeric[index] else cell.ljust(widths[index])
            for index, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(columns), rule, *(line(row) for row in rows)])


def render(result: ScenarioResult) -> str:
    lines = [f"== {result.heading} =="]
    if result.skipped:
        lines.append(f"skipped: {result.skipped}")
    if result.rows:
        lines.append(render_table(result.columns, result.rows))
    for note in result.notes:
        lines.append(f"  {note}")
    for bar in result.bars:
        lines.append(f"  bar: {bar.name} {bar.limit}: {bar.value} -> {bar.verdict}")
    if result.error:
        lines.append(f"failed: {result.error}")
    return "\n".join(lines)


# -- cell formats ----------------------------------------------------------------------


def ms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    value = seconds * 1000
    if value >= 1000:
        return f"{value:,.0f} ms"
    if value >= 100:
        return f"{value:.0f} ms"
    if value >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def ms_range(low: float, high: float) -> str:
    return f"{ms(low).removesuffix(' ms')}–{ms(high)}"


def ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3f}×"


def ratio_range(low: float, high: float) -> str:
    return f"{low:.2f}–{high:.2f}×"


def iqr(summary: stats.Summary) -> str:
    """The interquartile range of ratios: where the middle half of the rounds fell."""
    if summary.n == 0 or math.isnan(summary.q1):
        return "-"
    return f"{summary.q1:.2f}–{summary.q3:.2f}×"


def ratio_iqr(summary: stats.Summary) -> str:
    return f"{ratio(summary.median)} (IQR {iqr(summary)})"


def count(value: int) -> str:
    return f"{value:,}"


STATEMENTS_NOTE = (
    "client = sent by the process (the library's own included); server = run by PostgreSQL "
    "with pg_stat_statements.track = all (inside triggers too), shown only where "
    "pg_stat_statements is in shared_preload_libraries."
)


def statements(counted: dict[str, int | None], per: int) -> str:
    """Statements per operation: ``3`` (client) or ``3 / 7`` (client / server)."""

    def one(value: int) -> str:
        share = value / max(1, per)
        return f"{share:.0f}" if share == round(share) else f"{share:.2f}"

    client = counted.get("client")
    if client is None:
        return "-"
    server = counted.get("server")
    return one(client) if server is None else f"{one(client)} / {one(server)}"
