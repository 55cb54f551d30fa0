"""Scenario 7: incremental refresh, the writer's wait against a full refresh, by size.

Per account: its sales, lines, units and revenue, over sales joined to their lines
(``benchviews.FullAccountTotals`` and ``IncAccountTotals``, one query over two copies of
the ledger; a third copy is read by no view). For each size, side by side in alternating
rounds: an autocommit ``save()`` of one line without the library (the baseline process,
no trigger on its table), with the full-refresh view (``on_commit``: the writer waits for
a REFRESH ... CONCURRENTLY) and with the incremental view (``on_commit``: the writer waits
for the refresh of one key); the full refresh; the incremental view's own full rebuild;
the bare SELECT of the query (the floor of any full recompute). Then bulk changes of 1 %
and 30 % of the lines, each followed by a VACUUM (not timed).

Bars (SPEC §6, at 1M lines; judged at 1M and above, or at the largest size run): the
incremental save ≤ 2× the save without the library, and ≥ 100× shorter than the full
refresh (its ratio to it ≤ 0.01×), both judged on the interquartile range of the paired
per-round ratios.
"""

from __future__ import annotations

from .. import report, stats
from ..ledger_dataset import Ledger, line_table, shape
from ..report import Bar, ScenarioResult
from .common import Context, alternate

SAVES = {"plain": "no library", "full": "full-refresh view", "inc": "incremental view"}
REFRESHES = {
    "full": "full refresh: FullAccountTotals.refresh() (CONCURRENTLY)",
    "rebuild": "incremental view's full rebuild: IncAccountTotals.refresh()",
    "select": "bare SELECT of the view's query (fetched)",
}
BAR_SIZE = 1_000_000
SAVE_BAR, REFRESH_BAR = 2.0, 0.01


def _agent(copy: str) -> str:
    return "baseline" if copy == "plain" else "triggers"


def run(ctx: Context, result: ScenarioResult) -> None:
    config = ctx.config
    ledger = Ledger(ctx.dataset.admin)
    result.columns = ["lines", "operation", "variant", "median", "min–max", "ratio (IQR)", "stmts"]
    data: dict[str, dict] = {}
    for size in config.incremental_sizes:
        label = f"{report.count(size)} lines"
        ctx.progress(f"{label}: loading three copies")
        ledger.load(size)
        ctx.agents.restart("baseline", "triggers")  # fresh sessions for every size
        ops = [("save", copy) for copy in SAVES] + [("refresh", how) for how in REFRESHES]

        def one(op: tuple[str, str], size: int = size) -> float:
            kind, what = op
            if kind == "save":
                saves = (
                    config.incremental_full_saves if what == "full" else config.incremental_saves
                )
                return float(
                    ctx.agents.get(_agent(what)).call(
                        "ledger_save",
                        copy=what,
                        saves=saves,
                        lines=size,
                        seed=ctx.rng.randrange(1 << 30),
                    )
                )
            return float(ctx.agents.get("triggers").call("ledger_refresh", how=what))

        samples = alternate(ctx, ops, one, config.incremental_rounds, label=label, warmup=one)
        bulk = {
            share: _bulk(ctx, ledger, size, share, config.incremental_bulk_rounds)
            for share in config.incremental_bulk_shares
        }
        counts = _statements(ctx, ledger, size)
        data[str(size)] = {
            "view_rows": shape(size)[1],
            "seconds": {f"{k}/{w}": v for (k, w), v in samples.items()},
            "bulk": {str(share): values for share, values in bulk.items()},
            "statements": counts,
        }
        _rows(result, size, samples, bulk, counts)
        if size >= BAR_SIZE or size == max(config.incremental_sizes):
            _bars(result, size, samples)
    result.data = {"sizes": data, "pg_ivm": False}
    result.notes = _notes(ctx, config)


def _bulk(
    ctx: Context, ledger: Ledger, size: int, share: float, rounds: int
) -> dict[str, list[float]]:
    def one(copy: str) -> float:
        seconds = ctx.agents.get(_agent(copy)).call(
            "ledger_bulk", copy=copy, share=share, lines=size
        )
        ledger.after_bulk(line_table(copy))  # dead rows vacuumed, not timed
        return float(seconds)

    return alternate(
        ctx, list(SAVES), one, rounds, label=f"{report.count(size)} lines, {share:.0%}"
    )


def _statements(ctx: Context, ledger: Ledger, size: int) -> dict[str, str]:
    """Statements per operation, from extra untimed runs (a save's untimed fetch of its
    line is taken off). Saves and refreshes are counted twice and the smaller count kept:
    once a minute (``LIVE_MATVIEW_CACHE_SECONDS``) one also re-reads the source map."""
    counts = {}
    for copy in SAVES:
        runs = [
            ctx.agents.get(_agent(copy)).call(
                "statements",
                operation="ledger_save",
                args={"copy": copy, "saves": 1, "lines": size, "seed": seed},
            )
            for seed in (1, 2)
        ]
        counted = min(runs, key=lambda run: run["client"])
        counted = {k: (v - 1 if v is not None else None) for k, v in counted.items()}
        counts[f"save/{copy}"] = report.statements(counted, 1)
    for how in REFRESHES:
        counted = min(
            (
                ctx.agents.get("triggers").call(
                    "statements", operation="ledger_refresh", args={"how": how}
                )
                for _ in range(2)
            ),
            key=lambda run: run["client"],
        )
        counts[f"refresh/{how}"] = report.statements(counted, 1)
    for copy in SAVES:
        counted = ctx.agents.get(_agent(copy)).call(
            "statements",
            operation="ledger_bulk",
            args={"copy": copy, "share": 0.01, "lines": size},
        )
        ledger.after_bulk(line_table(copy))
        counts[f"bulk/{copy}"] = report.statements(counted, 1)
    return counts


def _ratio(values: list[float], baseline: list[float]) -> str:
    return report.ratio_iqr(stats.summarize(stats.paired_ratios(values, baseline)))


def _rows(
    result: ScenarioResult,
    size: int,
    samples: dict,
    bulk: dict[float, dict[str, list[float]]],
    counts: dict[str, str],
) -> None:
    base = samples[("save", "plain")]
    first = True

    def add(operation: str, variant: str, values: list[float], ratio: str, count: str) -> None:
        nonlocal first
        summary = stats.summarize(values)
        result.rows.append(
            [
                report.count(size) if first else "",
                operation,
                variant,
                report.ms(summary.median),
                report.ms_range(summary.low, summary.high),
                ratio,
                count,
            ]
        )
        first = False

    for copy, variant in SAVES.items():
        values = samples[("save", copy)]
        ratio = "1" if copy == "plain" else _ratio(values, base)
        add("save() of 1 line, autocommit", variant, values, ratio, counts[f"save/{copy}"])
    inc = samples[("save", "inc")]
    for how, variant in REFRESHES.items():
        values = samples[("refresh", how)]
        # How many incremental saves fit in one of these: the other side of the bar.
        times = stats.summarize(stats.paired_ratios(values, inc))
        add(
            "refresh",
            variant,
            values,
            f"{times.median:,.0f}× the inc. save",
            counts[f"refresh/{how}"],
        )
    for share, by_copy in bulk.items():
        rows = max(1, int(size * share))
        for copy, variant in SAVES.items():
            values = by_copy[copy]
            ratio = "1" if copy == "plain" else _ratio(values, by_copy["plain"])
            count = counts[f"bulk/{copy}"] if share == 0.01 else ""
            add(f"update {share:.0%} ({report.count(rows)} lines)", variant, values, ratio, count)


def _bars(result: ScenarioResult, size: int, samples: dict) -> None:
    inc, base = samples[("save", "inc")], samples[("save", "plain")]
    full = samples[("refresh", "full")]
    at = f"at {report.count(size)} lines" + ("" if size == BAR_SIZE else " (SPEC: at 1M)")
    result.bars.append(
        Bar.at_most(
            f"incremental on_commit save ÷ save without the library, {at}",
            SAVE_BAR,
            stats.summarize(stats.paired_ratios(inc, base)),
        )
    )
    bar = Bar.at_most(
        f"incremental on_commit save ÷ full refresh (≥ 100× shorter), {at}",
        REFRESH_BAR,
        stats.summarize(stats.paired_ratios(inc, full)),
    )
    result.bars.append(bar)


def _notes(ctx: Context, config) -> list[str]:
    pg_ivm = ctx.agents.get("triggers").call("pg_ivm_available")
    return [
        "ratio: variant ÷ no library in the same round (medians over rounds, interquartile "
        "range in brackets); refresh rows: how many incremental saves of the same round one "
        "refresh takes.",
        f"saves: median of {config.incremental_saves} autocommit save()s of random lines per "
        f"run ({config.incremental_full_saves} with the full-refresh view: each waits for a "
        f"full refresh), {config.incremental_rounds} rounds; bulk: one QuerySet.update() per "
        f"run, {config.incremental_bulk_rounds} rounds.",
        "view rows: one per account, a hundredth of the lines; 1 % of the lines touch 1 % of "
        "the keys (refreshed by key), 30 % touch 30 % of them, over "
        "LIVE_MATVIEW_INCREMENTAL_MAX_SHARE (0.25): a full rebuild.",
        "stmts: SQL statements sent per operation (save: the untimed fetch of the line not "
        "counted; saves and refreshes: the smaller of two runs, as once a minute one also "
        "re-reads the cached source map, ~26 statements more; bulk: the 1 % change), in "
        "extra untimed runs; " + report.STATEMENTS_NOTE,
        "pg_ivm: "
        + (
            "available on this server but not measured by this scenario yet."
            if pg_ivm
            else "not available on this server (not in pg_available_extensions; it is not "
            "packaged here): skipped."
        ),
    ]
