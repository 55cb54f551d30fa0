"""What every scenario gets, and the round-robin that makes comparisons fair.

``alternate`` runs every variant once per round, in a fresh random order each round,
so slow drifts of the machine (other jobs, CPU frequency, checkpoints) fall on all
variants alike, and results stay aligned by round for paired ratios.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ..agents import AgentPool
from ..config import Config
from ..dataset import Dataset

V = TypeVar("V")


@dataclass
class Context:
    config: Config
    agents: AgentPool
    dataset: Dataset
    rng: random.Random

    def progress(self, message: str) -> None:
        """On stderr, so stdout holds nothing but the tables."""
        print(f"  .. {message}", file=sys.stderr, flush=True)


def alternate(
    ctx: Context,
    variants: Sequence[V],
    run: Callable[[V], float],
    rounds: int,
    *,
    label: str = "",
    warmup: Callable[[V], object] | None = None,
) -> dict[V, list[float]]:
    """``rounds`` values per variant; index i of every list comes from round i."""
    if warmup is not None:
        for variant in variants:
            warmup(variant)
    samples: dict[V, list[float]] = {variant: [] for variant in variants}
    for number in range(rounds):
        if label:
            ctx.progress(f"{label}: round {number + 1}/{rounds}")
        order = list(variants)
        ctx.rng.shuffle(order)
        for variant in order:
            samples[variant].append(run(variant))
    return samples
