"""Scenario 2: 1,000 writes over 3 source models of 2 views; how many refreshes, how long.

live_matview (on_commit) refreshes each dirty view once per commit, or once per
``deferred_refresh()`` block. Its opponent is the best short version a Django developer
writes by hand: ``post_save`` receivers that collect the dirty views and refresh each
once in ``transaction.on_commit``; the naive receiver that refreshes on every save is
shown too, labelled as such. Each live_matview run is compared with the best hand-made
run of the same round that commits the same way (one transaction, or one commit per
save). Bars (SPEC §6): exactly 1 refresh per view for the transaction and the deferred
block.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import report, stats
from ..dataset import Shop
from ..report import Bar, ScenarioResult
from .common import Context, alternate


@dataclass(frozen=True)
class Variant:
    label: str
    agent: str
    style: str  # txn | autocommit | deferred
    baseline: str  # label of the hand-made variant it is compared with
    one_per_view: bool = False  # a bar: exactly one refresh per view
    hand: str = "naive"  # which hand-made receiver, for the baseline agent


HAND_TXN = "hand-made best (collect, refresh once on_commit), 1 transaction"
HAND_AUTO = "hand-made best (collect, refresh once on_commit), autocommit"
NAIVE_TXN = "hand-made naive (refresh in every post_save), 1 transaction"
NAIVE_AUTO = "hand-made naive (refresh in every post_save), autocommit"
VARIANTS = (
    Variant(HAND_TXN, "baseline", "txn", HAND_TXN, hand="best"),
    Variant(HAND_AUTO, "baseline", "autocommit", HAND_AUTO, hand="best"),
    Variant(NAIVE_TXN, "baseline", "txn", HAND_TXN),
    Variant(NAIVE_AUTO, "baseline", "autocommit", HAND_AUTO),
    Variant("live_matview triggers, 1 transaction", "triggers", "txn", HAND_TXN, True),
    Variant("live_matview signals, 1 transaction", "signals", "txn", HAND_TXN, True),
    Variant("live_matview triggers, deferred_refresh()", "triggers", "deferred", HAND_AUTO, True),
    Variant("live_matview signals, deferred_refresh()", "signals", "deferred", HAND_AUTO, True),
    Variant("live_matview triggers, autocommit, no batching", "triggers", "autocommit", HAND_AUTO),
)
VIEWS = ("benchviews_customertotals", "benchviews_productsales")


def run(ctx: Context, result: ScenarioResult) -> None:
    config = ctx.config
    shop = Shop(max(10, config.coalesce_base_orders // 20), config.products, 0)
    ctx.dataset.load_shop(shop)
    base_orders = config.coalesce_base_orders
    runs: dict[str, list[dict]] = {variant.label: [] for variant in VARIANTS}

    def one(variant: Variant) -> float:
        ctx.dataset.set_triggers(variant.agent == "triggers")
        ctx.dataset.reset_orders(base_orders)
        ctx.dataset.checkpoint()
        outcome = ctx.agents.get(variant.agent).call("coalesce", **_args(variant))
        runs[variant.label].append(outcome)
        return float(outcome["seconds"])

    def _args(variant: Variant) -> dict[str, object]:
        return {
            "style": variant.style,
            "n": config.coalesce_writes,
            "customers": shop.customers,
            "products": shop.products,
            "hand": variant.hand,
        }

    def sent(variant: Variant) -> str:
        ctx.dataset.set_triggers(variant.agent == "triggers")
        ctx.dataset.reset_orders(base_orders)
        counted = ctx.agents.get(variant.agent).call(
            "statements", operation="coalesce", args=_args(variant)
        )
        return report.statements(counted, 1)

    seconds = alternate(
        ctx, VARIANTS, one, config.coalesce_rounds, label=f"{config.coalesce_writes} writes"
    )
    result.columns = [
        "variant",
        "refreshes (per view)",
        "refresh ratio",
        "median time",
        "min–max",
        "time ratio (IQR)",
        "statements",
    ]
    by_label = {variant.label: variant for variant in VARIANTS}
    for variant in VARIANTS:
        result.rows.append([*_row(variant, runs, seconds, by_label), sent(variant)])
        if variant.one_per_view:
            counts = [_per_view(outcome) for outcome in runs[variant.label]]
            met = all(count == (1, 1) for count in counts)
            result.bars.append(
                Bar(variant.label, "= 1 refresh per view", _counts_text(counts), met)
            )
    result.data = {
        "writes": config.coalesce_writes,
        "base_orders": base_orders,
        "runs": runs,
    }
    result.notes = [
        f"{report.count(config.coalesce_writes)} save() calls: 1 in 10 a Customer, 1 in 10 a "
        "Product, the rest new Orders; CustomerTotals reads Order+Customer, ProductSales "
        "Order+Product.",
        f"views over {report.count(base_orders)} orders; the hand-made receivers run a plain "
        "REFRESH MATERIALIZED VIEW (faster than CONCURRENTLY, but it blocks readers); live_"
        "matview refreshes CONCURRENTLY, logs each refresh and keeps its marks.",
        "ratios: ÷ the best hand-made run of the same round that commits the same way "
        f"(time: median over {config.coalesce_rounds} rounds, interquartile range in "
        "brackets).",
        "statements: SQL statements sent for the whole block of writes, in one extra "
        "untimed run; " + report.STATEMENTS_NOTE,
        "no batching: every autocommit save() is a commit, and on_commit refreshes after each "
        "(CONCURRENTLY, logged): what deferred_refresh() or refresh_mode='async' avoid.",
    ]


def _per_view(outcome: dict) -> tuple[int, ...]:
    return tuple(int(outcome["refreshes"].get(view, 0)) for view in VIEWS)


def _counts_text(counts: list[tuple[int, ...]]) -> str:
    distinct = sorted(set(counts))
    return " / ".join(f"{sum(c)} ({'+'.join(map(str, c))})" for c in distinct)


def _row(
    variant: Variant,
    runs: dict[str, list[dict]],
    seconds: dict[Variant, list[float]],
    by_label: dict[str, Variant],
) -> list[str]:
    baseline = by_label[variant.baseline]
    mine = [sum(_per_view(outcome)) for outcome in runs[variant.label]]
    theirs = [sum(_per_view(outcome)) for outcome in runs[baseline.label]]
    summary = stats.summarize(seconds[variant])
    if variant is baseline:
        refresh_ratio = time_ratio = "1"
    else:
        refresh_ratio = report.ratio(stats.summarize(stats.paired_ratios(mine, theirs)).median)
        ratios = stats.paired_ratios(seconds[variant], seconds[baseline])
        time_ratio = report.ratio_iqr(stats.summarize(ratios))
    failed = sum(int(outcome.get("failed", 0)) for outcome in runs[variant.label])
    return [
        variant.label,
        _counts_text([_per_view(outcome) for outcome in runs[variant.label]])
        + (f", {failed} FAILED" if failed else ""),
        refresh_ratio,
        report.ms(summary.median),
        report.ms_range(summary.low, summary.high),
        time_ratio,
    ]
