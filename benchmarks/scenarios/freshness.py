"""Scenario 4: from commit to a reader seeing the write in the view, by refresh mode.

on_commit makes the writer wait for the refresh; async hands it to a thread of the
writing process; the worker (``live_matview_worker``, another process) either wakes on
the NOTIFY the capture trigger sends or polls every ``--interval`` seconds. The writer
is the same process in every mode; see benchmarks/ops/freshness.py for the timing.
"""

from __future__ import annotations

import importlib.util

from .. import report, stats
from ..agents import AgentError, Worker
from ..dataset import Shop
from ..report import ScenarioResult
from .common import Context

WORKER_MODULE = "live_matview.management.commands.live_matview_worker"


def worker_available() -> bool:
    try:
        return importlib.util.find_spec(WORKER_MODULE) is not None
    except (ImportError, ValueError):
        return False


def _collect(ctx: Context, mode: str, samples: int, jitter: float = 0.0) -> list[dict]:
    shop = ctx.dataset.shop
    assert shop is not None
    ctx.dataset.clear_marks()
    agent = ctx.agents.get("triggers")
    agent.call("latency", mode=mode, samples=1, products=shop.products)  # warm-up
    measured = agent.call(
        "latency",
        mode=mode,
        samples=samples,
        products=shop.products,
        jitter=jitter,
        seed=ctx.rng.randrange(1 << 30),
    )
    return list(measured)


def _with_worker(ctx: Context, *, listen: bool, interval: float, samples: int) -> list[dict]:
    name = "notify" if listen else "poll"
    worker = Worker(ctx.agents, listen=listen, interval=interval, name=name)
    try:
        # Writes at random moments of the polling cycle (a NOTIFY makes it irrelevant).
        return _collect(ctx, "manual", samples, jitter=0.0 if listen else interval)
    finally:
        worker.stop()


def run(ctx: Context, result: ScenarioResult) -> None:
    config = ctx.config
    orders = config.refresh_orders
    ctx.dataset.load_shop(Shop(max(10, orders // 100), config.products, orders))
    ctx.dataset.set_triggers(True)
    measured: dict[str, list[dict]] = {"on_commit": [], "async": []}
    chunks = max(1, config.rounds)
    per_chunk = max(1, config.latency_samples // chunks)
    for number in range(chunks):
        ctx.progress(f"on_commit / async: round {number + 1}/{chunks}")
        order = list(measured)
        ctx.rng.shuffle(order)
        for mode in order:
            measured[mode].extend(_collect(ctx, mode, per_chunk))
    labels = {"on_commit": "on_commit (writer waits)", "async": "async thread"}
    unavailable: dict[str, str] = {}
    worker_modes = {
        "worker, NOTIFY": {"listen": True, "interval": 5.0},
        f"worker, polling every {config.worker_poll_interval:g} s": {
            "listen": False,
            "interval": config.worker_poll_interval,
        },
    }
    for label, options in worker_modes.items():
        if not worker_available():
            unavailable[label] = f"not available ({WORKER_MODULE} does not exist yet)"
            continue
        ctx.progress(label)
        try:
            measured[label] = _with_worker(ctx, samples=config.worker_samples, **options)
        except AgentError as exc:
            unavailable[label] = f"failed: {str(exc).splitlines()[0]}"
    result.columns = [
        "mode",
        "n",
        "writer waits p50",
        "p99",
        "commit→fresh p50",
        "p99",
        "max",
        "timeouts",
    ]
    for key, samples in measured.items():
        waits = [s["writer_wait"] for s in samples]
        fresh = [s["commit_to_fresh"] for s in samples if s["commit_to_fresh"] is not None]
        result.rows.append(
            [
                labels.get(key, key),
                str(len(samples)),
                report.ms(stats.percentile(waits, 50)),
                report.ms(stats.percentile(waits, 99)),
                report.ms(stats.percentile(fresh, 50)),
                report.ms(stats.percentile(fresh, 99)),
                report.ms(max(fresh) if fresh else None),
                str(len(samples) - len(fresh)),
            ]
        )
    for label, reason in unavailable.items():
        result.rows.append([label, "", reason, "", "", "", "", ""])
    result.data = {"orders": orders, "samples": measured, "unavailable": unavailable}
    result.notes = [
        "writer waits: from the COMMIT being issued to control returning to the writer.",
        "commit→fresh: from the COMMIT being issued to a reader's poll (every 0.5 ms) finding "
        "the new row in CustomerTotals; both views are refreshed in each pass.",
        f"views over {report.count(orders)} orders; on_commit and async alternate in "
        f"{chunks} rounds; p99 of this few samples is close to the maximum.",
        "the polling worker's writes come at random points of its cycle (a pause of up to "
        "one interval before each), so its p50 is about half the interval.",
    ]
