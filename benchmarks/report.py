"""Scenario results and their plain-text tables.

A table is a list of string cells: the scenario decides what to show, this module only
aligns it (text columns left, numbers right) so it reads the same in a terminal, a CI
log and RESULTS.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Bar:
    """A quality bar of SPEC §6 and whether this run met it (None: not measurable)."""

    name: str
    limit: str
    value: str
    met: bool | None

    @property
    def verdict(self) -> str:
        return {True: "met", False: "MISSED", None: "n/a"}[self.met]


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


def count(value: int) -> str:
    return f"{value:,}"
