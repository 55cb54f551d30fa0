"""Scenario 5: refresh time and write overhead as the source table grows.

For each size the shop is rebuilt with that many orders (one customer per 100 orders,
so CustomerTotals grows too). Refreshes: live_matview and hand-written, plain and
CONCURRENTLY, alternating. Writes: the variants of scenario 1 (each library process in
manual and in on_commit mode), each run followed by deleting what it added (not timed),
so every run sees the same table. In manual mode the write overhead does not grow with
the table; in on_commit, the default, the writer waits for the refresh, which does.
"""

from __future__ import annotations

from .. import report, stats
from ..dataset import Shop
from ..report import ScenarioResult
from .common import Context, alternate
from .refresh_overhead import refresh_samples
from .write_overhead import BASELINE, VARIANTS, measure_after

REFRESH_KINDS = [
    ("triggers", how, concurrently) for concurrently in (False, True) for how in ("hand", "library")
]


def _refresh_label(how: str, concurrently: bool) -> str:
    mode = "CONCURRENTLY" if concurrently else "plain"
    return f"{'live_matview' if how == 'library' else 'hand-written'} {mode}"


def run(ctx: Context, result: ScenarioResult) -> None:
    config = ctx.config
    result.columns = ["orders", "measure", "variant", "median", "min–max", "ratio (IQR)"]
    data: dict[str, dict] = {}
    for size in config.sizes:
        shop = Shop(max(10, size // 100), config.products, size)
        ctx.progress(f"loading {report.count(size)} orders")
        ctx.dataset.load_shop(shop)
        ctx.dataset.set_triggers(True)
        refreshes = refresh_samples(
            ctx,
            REFRESH_KINDS,
            config.scale_rounds,
            config.scale_repeats,
            f"{report.count(size)} orders, refresh",
        )
        writes = {}
        workloads = (("save_txn", config.scale_saves), ("bulk_create", config.scale_bulk_rows))
        for kind, rows in workloads:

            def one(variant: str, kind: str = kind, rows: int = rows, keep: int = size) -> float:
                return measure_after(ctx, variant, kind, rows, keep=keep)

            writes[kind] = alternate(
                ctx,
                VARIANTS,
                one,
                config.scale_rounds,
                label=f"{report.count(size)} orders, {kind}",
            )
        data[str(size)] = {
            "refresh": {
                _refresh_label(how, c): values for (_a, how, c), values in refreshes.items()
            },
            "writes": writes,
            "view_rows": shop.customers,
        }
        _rows(result, size, refreshes, writes, config)
    result.data = {"sizes": data}
    result.notes = [
        "refresh ratio: live_matview ÷ hand-written of the same pair; write ratio: variant ÷ "
        "baseline of the same round (medians over rounds, interquartile range in brackets).",
        "manual: writes only mark; on_commit (the default): the writer also waits for the "
        "refresh of the views after the commit, which grows with the table.",
        f"writes: save() ×{config.scale_saves} in one transaction, bulk_create of "
        f"{report.count(config.scale_bulk_rows)} rows, into the table of that size.",
    ]


def _rows(result: ScenarioResult, size: int, refreshes: dict, writes: dict, config) -> None:
    first = True
    for concurrently in (False, True):
        hand = refreshes[("triggers", "hand", concurrently)]
        for how in ("hand", "library"):
            values = refreshes[("triggers", how, concurrently)]
            summary = stats.summarize(values)
            ratio = (
                "1"
                if how == "hand"
                else report.ratio_iqr(stats.summarize(stats.paired_ratios(values, hand)))
            )
            result.rows.append(
                [
                    report.count(size) if first else "",
                    "refresh CustomerTotals",
                    _refresh_label(how, concurrently),
                    report.ms(summary.median),
                    report.ms_range(summary.low, summary.high),
                    ratio,
                ]
            )
            first = False
    for kind, samples in writes.items():
        measure = (
            f"save() ×{config.scale_saves}, 1 txn"
            if kind == "save_txn"
            else f"bulk_create {report.count(config.scale_bulk_rows)}"
        )
        for variant in VARIANTS:
            summary = stats.summarize(samples[variant])
            ratio = (
                "1"
                if variant == BASELINE
                else report.ratio_iqr(
                    stats.summarize(stats.paired_ratios(samples[variant], samples[BASELINE]))
                )
            )
            result.rows.append(
                [
                    "",
                    measure,
                    variant,
                    report.ms(summary.median),
                    report.ms_range(summary.low, summary.high),
                    ratio,
                ]
            )
