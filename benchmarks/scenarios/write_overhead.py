"""Scenario 1: what capture adds to writes, views not refreshed in the measured part.

Three processes run the same workloads on the same table: ``baseline`` (live_matview
not installed, the capture trigger disabled), ``triggers`` (trigger on) and ``signals``
(trigger off, Django-side capture). The refresh mode is ``manual``, so writes only mark.
Bars (SPEC §6): single-row saves ≤ 1.10×, bulk writes ≤ 1.05× the baseline, judged on
the median of per-round ratios.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import report, stats
from ..dataset import Shop
from ..report import Bar, ScenarioResult
from .common import Context, alternate

VARIANTS = ("baseline", "triggers", "signals")
SINGLE_ROW_BAR = 1.10
BULK_BAR = 1.05


@dataclass(frozen=True)
class Workload:
    kind: str
    rows: int
    limit: float | None  # the bar, None where SPEC §6 sets none
    variants: tuple[str, ...] = VARIANTS
    extra_rounds: bool = False  # cheap and noisy (commit-bound): twice the rounds

    def describe(self) -> str:
        n = report.count(self.rows)
        return {
            "save_txn": f"save() ×{n}, one transaction",
            "save_autocommit": f"save() ×{n}, autocommit",
            "bulk_create": f"bulk_create {n} rows",
            "update": f"QuerySet.update {n} rows",
            "raw_insert": f"raw INSERT of {n} rows",
            "server_loop": f"server loop: INSERT ×{n}, 1 txn",
        }[self.kind]


def workloads(ctx: Context) -> list[Workload]:
    config = ctx.config
    loops = [
        Workload("server_loop", rows, None, ("baseline", "triggers")) for rows in config.loop_rows
    ]
    return [
        Workload("save_txn", config.saves, SINGLE_ROW_BAR, extra_rounds=True),
        Workload("save_autocommit", config.autocommit_saves, SINGLE_ROW_BAR, extra_rounds=True),
        Workload("bulk_create", config.bulk_rows, BULK_BAR),
        Workload("update", config.bulk_rows, BULK_BAR),
        Workload("raw_insert", config.raw_rows, BULK_BAR),
        *loops,
    ]


def measure_write(ctx: Context, variant: str, kind: str, rows: int, *, existing: int) -> float:
    """One timed write by ``variant`` on an orders table reset to ``existing`` rows."""
    shop = ctx.dataset.shop
    assert shop is not None
    ctx.dataset.set_triggers(variant == "triggers")
    ctx.dataset.reset_orders(existing)
    ctx.dataset.checkpoint()
    return float(
        ctx.agents.get(variant).call(
            "write", kind=kind, n=rows, customers=shop.customers, products=shop.products
        )
    )


def measure_after(ctx: Context, variant: str, kind: str, rows: int, *, keep: int) -> float:
    """One timed write by ``variant`` into the orders table as it is; afterwards the
    table is trimmed back to its first ``keep`` rows (not timed)."""
    shop = ctx.dataset.shop
    assert shop is not None
    ctx.dataset.set_triggers(variant == "triggers")
    ctx.dataset.checkpoint()
    try:
        return float(
            ctx.agents.get(variant).call(
                "write", kind=kind, n=rows, customers=shop.customers, products=shop.products
            )
        )
    finally:
        ctx.dataset.trim_orders(keep)


def run(ctx: Context, result: ScenarioResult) -> None:
    config = ctx.config
    ctx.dataset.load_shop(Shop(config.customers, config.products, 0))
    result.columns = [
        "workload",
        "variant",
        "median",
        "min–max",
        "ratio",
        "ratio min–max",
        "added/row",
        "bar",
    ]
    for workload in workloads(ctx):
        existing = workload.rows if workload.kind == "update" else 0

        def one(variant: str, workload: Workload = workload, existing: int = existing) -> float:
            return measure_write(ctx, variant, workload.kind, workload.rows, existing=existing)

        def warm(variant: str, workload: Workload = workload) -> float:
            rows = max(1, workload.rows // 10)
            start = rows if workload.kind == "update" else 0
            return measure_write(ctx, variant, workload.kind, rows, existing=start)

        samples = alternate(
            ctx,
            workload.variants,
            one,
            config.rounds * (2 if workload.extra_rounds else 1),
            label=workload.describe(),
            warmup=warm if config.warmup else None,
        )
        result.data[f"{workload.kind}/{workload.rows}"] = {
            "rows": workload.rows,
            "seconds": samples,
        }
        _rows_for(result, workload, samples)
    result.notes = [
        "ratio: median over rounds of (variant ÷ baseline of the same round); "
        f"{config.rounds * 2} rounds for the save() loops, {config.rounds} for the others, "
        "variants in random order each round.",
        "baseline: live_matview not installed and the capture trigger disabled; "
        "signals: trigger disabled, Django-side capture.",
        "added/row: median paired difference ÷ rows (per statement for the save() loops).",
        "server loop: a DO block of single-row INSERTs (no round trips), the per-statement "
        "cost of the trigger at two transaction lengths; no bar, and invisible to signals mode.",
    ]


def _rows_for(result: ScenarioResult, workload: Workload, samples: dict[str, list[float]]) -> None:
    base = samples["baseline"]
    limit = workload.limit
    for variant in workload.variants:
        summary = stats.summarize(samples[variant])
        cells = [
            workload.describe() if variant == "baseline" else "",
            variant,
            report.ms(summary.median),
            report.ms_range(summary.low, summary.high),
        ]
        if variant == "baseline":
            result.rows.append([*cells, "1", "", "", ""])
            continue
        ratios = stats.paired_ratios(samples[variant], base)
        ratio = stats.summarize(ratios)
        added = stats.summarize(stats.paired_differences(samples[variant], base)).median
        met = None if limit is None else ratio.median <= limit
        result.rows.append(
            [
                *cells,
                report.ratio(ratio.median),
                report.ratio_range(ratio.low, ratio.high),
                f"{added / workload.rows * 1e6:+.1f} µs",
                "" if limit is None else f"≤ {limit:.2f}× {'met' if met else 'MISSED'}",
            ]
        )
        if limit is not None:
            result.bars.append(
                Bar(
                    f"{workload.describe()}, {variant}",
                    f"≤ {limit:.2f}×",
                    report.ratio(ratio.median),
                    met,
                )
            )
        key = f"{workload.kind}/{workload.rows}/{variant}"
        result.data.setdefault("ratios", {})[key] = ratios
