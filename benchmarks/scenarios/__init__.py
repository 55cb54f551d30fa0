"""The seven scenarios of the benchmark issue, in the order they print.

Each ``run(ctx, result)`` fills the ``ScenarioResult`` it is given; the headings live
here so a scenario that fails still prints its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from ..report import ScenarioResult
from . import (
    coalescing,
    freshness,
    incremental,
    old_library,
    refresh_overhead,
    scale,
    write_overhead,
)
from .common import Context


class Scenario(NamedTuple):
    key: str
    number: int
    title: str
    run: Callable[[Context, ScenarioResult], None]

    def result(self) -> ScenarioResult:
        return ScenarioResult(self.key, self.number, self.title)


SCENARIOS = [
    Scenario(
        "write",
        1,
        "Write overhead of capture (manual: writes only mark; on_commit: the default, the "
        "writer also waits for the refresh)",
        write_overhead.run,
    ),
    Scenario("coalescing", 2, "Coalescing (refresh_mode=on_commit)", coalescing.run),
    Scenario(
        "refresh", 3, "Refresh overhead (live_matview vs hand-written SQL)", refresh_overhead.run
    ),
    Scenario("freshness", 4, "Freshness latency (commit → view shows the write)", freshness.run),
    Scenario("scale", 5, "Scale (refresh time and write overhead vs table size)", scale.run),
    Scenario("oldlib", 6, "Old library (django-materialized-view 0.1.6.2)", old_library.run),
    Scenario(
        "incremental",
        7,
        "Incremental refresh (the writer's wait, by key vs full refresh, by size)",
        incremental.run,
    ),
]
BY_KEY = {scenario.key: scenario for scenario in SCENARIOS}
