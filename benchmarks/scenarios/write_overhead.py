"""Scenario 1: what the library adds to writes, in two refresh modes, side by side.

Three processes run the same workloads on the same table: ``baseline`` (live_matview
not installed, the capture trigger disabled), ``triggers`` (trigger on) and ``signals``
(trigger off, Django-side capture). Each library process writes in two modes:

- ``manual``: writes only mark; this is the capture overhead SPEC §6 bounds
  (single-row saves ≤ 1.10×, bulk writes ≤ 1.05×), judged on the interquartile range of
  the per-round ratios, so a spread that straddles a bar reads "inconclusive";
- ``on_commit``, the default a user gets: the writer also waits for the refresh of the
  two views after each commit. No bar: it shows what the default costs a writer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import report, stats
from ..dataset import Shop
from ..report import Bar, ScenarioResult
from .common import Context, alternate

BASELINE = "baseline"
MANUAL = ("triggers, manual", "signals, manual")
ON_COMMIT = ("triggers, on_commit", "signals, on_commit")
VARIANTS = (BASELINE, *MANUAL, *ON_COMMIT)
SINGLE_ROW_BAR = 1.10
BULK_BAR = 1.05


def agent_and_mode(variant: str) -> tuple[str, str]:
    """``"triggers, on_commit"`` -> (``"triggers"``, ``"on_commit"``); baseline: manual."""
    agent, _, mode = variant.partition(", ")
    return agent, mode or "manual"


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
        Workload("server_loop", rows, None, (BASELINE, MANUAL[0])) for rows in config.loop_rows
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
    agent, mode = agent_and_mode(variant)
    ctx.dataset.set_triggers(agent == "triggers")
    ctx.dataset.reset_orders(existing)
    ctx.dataset.checkpoint()
    return float(
        ctx.agents.get(agent).call(
            "write",
            kind=kind,
            n=rows,
            customers=shop.customers,
            products=shop.products,
            mode=mode,
        )
    )


def statements_per_row(ctx: Context, variant: str, kind: str, rows: int, *, existing: int) -> str:
    """Statements sent per written row (per save() for the loops), from one extra run."""
    shop = ctx.dataset.shop
    assert shop is not None
    agent, mode = agent_and_mode(variant)
    ctx.dataset.set_triggers(agent == "triggers")
    ctx.dataset.reset_orders(existing)
    counted = ctx.agents.get(agent).call(
        "statements",
        operation="write",
        args={
            "kind": kind,
            "n": rows,
            "customers": shop.customers,
            "products": shop.products,
            "mode": mode,
        },
    )
    return report.statements(counted, rows if kind.startswith("save") else 1)


def measure_after(ctx: Context, variant: str, kind: str, rows: int, *, keep: int) -> float:
    """One timed write by ``variant`` into the orders table as it is; afterwards the
    table is trimmed back to its first ``keep`` rows (not timed)."""
    shop = ctx.dataset.shop
    assert shop is not None
    agent, mode = agent_and_mode(variant)
    ctx.dataset.set_triggers(agent == "triggers")
    ctx.dataset.checkpoint()
    try:
        return float(
            ctx.agents.get(agent).call(
                "write",
                kind=kind,
                n=rows,
                customers=shop.customers,
                products=shop.products,
                mode=mode,
            )
        )
    finally:
        ctx.dataset.trim_orders(keep)


def run(ctx: Context, result: ScenarioResult) -> None:
    config = ctx.config
    ctx.dataset.load_shop(Shop(config.customers, config.products, 0))
    result.columns = [
        "workload",
        "variant, refresh mode",
        "median",
        "min–max",
        "ratio",
        "ratio IQR",
        "added/row",
        "statements",
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
        sent = {
            variant: statements_per_row(
                ctx, variant, workload.kind, workload.rows, existing=existing
            )
            for variant in workload.variants
        }
        result.data[f"{workload.kind}/{workload.rows}"] = {
            "rows": workload.rows,
            "seconds": samples,
            "statements": sent,
        }
        _rows_for(result, workload, samples, sent)
    result.notes = [
        "ratio: median over rounds of (variant ÷ baseline of the same round), IQR: its "
        f"interquartile range; {config.rounds * 2} rounds for the save() loops, "
        f"{config.rounds} for the others, variants in random order each round.",
        "baseline: live_matview not installed and the capture trigger disabled; "
        "signals: trigger disabled, Django-side capture.",
        "manual: writes only mark (the bars); on_commit (the default): the writer also waits "
        "for the refresh of both views after each commit, so it grows with the views.",
        "added/row: median paired difference ÷ rows (per statement for the save() loops).",
        "statements: SQL statements the process sent per save() (per write for the bulk "
        "kinds), counted in one extra untimed run; " + report.STATEMENTS_NOTE,
        "server loop: a DO block of single-row INSERTs (no round trips), the per-statement "
        "cost of the trigger at two transaction lengths; no bar, and invisible to signals mode.",
    ]


def _rows_for(
    result: ScenarioResult,
    workload: Workload,
    samples: dict[str, list[float]],
    sent: dict[str, str],
) -> None:
    base = samples[BASELINE]
    for variant in workload.variants:
        summary = stats.summarize(samples[variant])
        cells = [
            workload.describe() if variant == BASELINE else "",
            variant,
            report.ms(summary.median),
            report.ms_range(summary.low, summary.high),
        ]
        if variant == BASELINE:
            result.rows.append([*cells, "1", "", "", sent[variant], ""])
            continue
        ratios = stats.paired_ratios(samples[variant], base)
        ratio = stats.summarize(ratios)
        added = stats.summarize(stats.paired_differences(samples[variant], base)).median
        limit = workload.limit if variant in MANUAL else None  # on_commit: no bar
        outcome = "" if limit is None else f"≤ {limit:.2f}× {stats.verdict(ratio, limit)}"
        result.rows.append(
            [
                *cells,
                report.ratio(ratio.median),
                report.iqr(ratio),
                f"{added / workload.rows * 1e6:+.1f} µs",
                sent[variant],
                outcome,
            ]
        )
        if limit is not None:
            result.bars.append(Bar.at_most(f"{workload.describe()}, {variant}", limit, ratio))
        key = f"{workload.kind}/{workload.rows}/{variant}"
        result.data.setdefault("ratios", {})[key] = ratios
