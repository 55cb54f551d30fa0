"""Sizes and repetitions: the default run (a few minutes on 2 cores) and ``--quick``.

Every number that shapes a run lives here, so the JSON output can record it whole.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Config:
    rounds: int = 5  # rounds of the write, refresh and old-library scenarios
    coalesce_rounds: int = 2  # hand-made and unbatched variants refresh ~1,800 times a run
    # Scenario 1: the shop has this many customers and products; orders are written.
    customers: int = 1_000
    products: int = 200
    saves: int = 2_000  # single-row save() calls in one transaction
    autocommit_saves: int = 500  # each one commits (and waits for the WAL flush)
    bulk_rows: int = 100_000  # bulk_create and QuerySet.update (SPEC §6 names 100k)
    raw_rows: int = 10_000  # rows of the one raw multi-row INSERT statement
    # INSERTs per transaction of the server-side loop: the per-statement cost of the
    # trigger, without client round trips, at a short and a long transaction.
    loop_rows: tuple[int, ...] = (2_000, 20_000)
    # Scenario 2.
    coalesce_writes: int = 1_000
    coalesce_base_orders: int = 1_000  # orders in the views before the writes
    # Scenarios 3, 4 and 6 run on this many orders (customers: one per 100 orders).
    refresh_orders: int = 10_000
    refresh_repeats: int = 5  # refreshes of each kind per round
    latency_samples: int = 30  # on_commit and async
    worker_samples: int = 15  # per worker mode
    worker_poll_interval: float = 1.0  # --interval of the polling-only worker
    # Scenario 5.
    sizes: tuple[int, ...] = (10_000, 100_000)
    scale_saves: int = 500
    scale_bulk_rows: int = 10_000
    scale_repeats: int = 2  # refreshes of each kind per round and size
    scale_rounds: int = 3
    # Scenario 7: lines of the ledger (sales: a tenth, accounts: a hundredth, the view's rows).
    incremental_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    incremental_rounds: int = 7
    incremental_saves: int = 9  # autocommit saves per run without the library / incremental
    incremental_full_saves: int = 1  # with the full-refresh view: each waits a full refresh
    incremental_bulk_rounds: int = 3
    incremental_bulk_shares: tuple[float, ...] = (0.01, 0.30)
    warmup: bool = True  # one unrecorded run of each variant before the rounds
    checkpoint: bool = True  # CHECKPOINT (not timed) before each measured run
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


QUICK = Config(
    rounds=1,
    coalesce_rounds=1,
    customers=50,
    products=20,
    saves=30,
    autocommit_saves=20,
    bulk_rows=1_000,
    raw_rows=1_000,
    loop_rows=(200, 1_000),
    coalesce_writes=20,
    coalesce_base_orders=200,
    refresh_orders=1_000,
    refresh_repeats=2,
    latency_samples=2,
    worker_samples=1,
    worker_poll_interval=0.2,
    sizes=(1_000,),
    scale_saves=20,
    scale_bulk_rows=500,
    scale_repeats=1,
    scale_rounds=1,
    incremental_sizes=(2_000,),
    incremental_rounds=2,
    incremental_saves=3,
    incremental_bulk_rounds=1,
    warmup=False,
    checkpoint=False,
)


def build(quick: bool, **overrides: Any) -> Config:
    """The preset, with the command-line options that were given (None: not given)."""
    base = QUICK if quick else Config()
    given = {key: value for key, value in overrides.items() if value is not None}
    if "rounds" in given:
        given.setdefault("coalesce_rounds", given["rounds"])
        given.setdefault("scale_rounds", given["rounds"])
        given.setdefault("incremental_rounds", given["rounds"])
    return replace(base, **given)


def parse_size(text: str) -> int:
    """``10000``, ``10k``, ``1M`` or ``1_000_000``."""
    text = text.strip().lower().replace("_", "").replace(",", "")
    factor = 1
    if text.endswith("k"):
        factor, text = 1_000, text[:-1]
    elif text.endswith("m"):
        factor, text = 1_000_000, text[:-1]
    value = int(float(text) * factor)
    if value <= 0:
        raise ValueError(f"size must be positive: {text!r}")
    return value


def parse_sizes(text: str) -> tuple[int, ...]:
    return tuple(parse_size(part) for part in text.split(",") if part.strip())
