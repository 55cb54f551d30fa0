"""Scenario 6: the same manual refresh through django-materialized-view 0.1.6.2 and
through live_matview, with the hand-written statement as the floor.

Each library runs in its own process (they cannot share one: both define the
``migrate_with_views`` command and a view base class), on the very same view: the old
library's models carry the same app label, so they name the relations live_matview
created. The old library is installed in the benchmark environment only
(benchmarks/requirements.txt); without it the scenario is skipped.
"""

from __future__ import annotations

import importlib.util

from .. import report, stats
from ..dataset import Shop
from ..report import ScenarioResult
from .common import Context
from .refresh_overhead import refresh_samples

PACKAGE = "django_materialized_view"
KINDS = [
    (agent, how, concurrently)
    for concurrently in (True, False)
    for agent, how in (("oldlib", "oldlib"), ("triggers", "library"), ("baseline", "hand"))
]
LABELS = {"oldlib": "django-materialized-view", "library": "live_matview", "hand": "hand-written"}


def available() -> bool:
    try:
        return importlib.util.find_spec(PACKAGE) is not None
    except (ImportError, ValueError):
        return False


def run(ctx: Context, result: ScenarioResult) -> None:
    config = ctx.config
    if not available():
        result.skipped = (
            "django-materialized-view is not installed (pip install -r benchmarks/requirements.txt)"
        )
        return
    orders = config.refresh_orders
    ctx.dataset.load_shop(Shop(max(10, orders // 100), config.products, orders))
    ctx.dataset.set_triggers(True)
    ctx.agents.restart("triggers", "baseline")
    ctx.agents.get("oldlib").call("setup_schema")  # the old library's own tables
    samples = refresh_samples(ctx, KINDS, config.rounds, config.refresh_repeats, "old library")
    result.columns = ["refresh of CustomerTotals", "mode", "median", "min–max", "ratio to old"]
    for concurrently in (True, False):
        old = samples[("oldlib", "oldlib", concurrently)]
        for kind in KINDS:
            _agent, how, kind_concurrently = kind
            if kind_concurrently != concurrently:
                continue
            summary = stats.summarize(samples[kind])
            ratio = stats.summarize(stats.paired_ratios(samples[kind], old)).median
            result.rows.append(
                [
                    f"{LABELS[how]} {'refresh()' if how != 'hand' else 'REFRESH'}",
                    "CONCURRENTLY" if concurrently else "plain",
                    report.ms(summary.median),
                    report.ms_range(summary.low, summary.high),
                    report.ratio(ratio),
                ]
            )
    result.data = {
        "orders": orders,
        "seconds": {
            f"{LABELS[how]}/{'concurrently' if c else 'plain'}": values
            for (_agent, how, c), values in samples.items()
        },
    }
    result.notes = [
        "each library refreshes from its own process, through its own refresh(); both write "
        "a log row. Ratio: median over pairs of (x ÷ the old library's run of the same pair).",
        f"view over {report.count(orders)} orders; {config.rounds} rounds × "
        f"{config.refresh_repeats} repeats, order random in each repeat.",
    ]
