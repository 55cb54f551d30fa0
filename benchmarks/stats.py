"""Summaries that survive a noisy 2-core machine: medians, ranges and paired ratios.

Independent medians of two variants drift by ±20 % between rounds here; the ratio of two
runs made back to back in the same round does not, so bars are judged on the median of
per-round ratios (research notes, Part B).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float
    n: int
    q1: float = math.nan  # first and third quartiles: the interquartile range (IQR)
    q3: float = math.nan

    def as_dict(self) -> dict[str, float | int]:
        return {
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "q1": self.q1,
            "q3": self.q3,
            "n": self.n,
        }


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        return Summary(math.nan, math.nan, math.nan, 0)
    return Summary(
        statistics.median(values),
        min(values),
        max(values),
        len(values),
        percentile(values, 25),
        percentile(values, 75),
    )


MET, MISSED, INCONCLUSIVE = "met", "MISSED", "inconclusive"


def verdict(summary: Summary, limit: float) -> str:
    """Judge an at-most bar on the interquartile range, not on the median alone.

    Met when even the third quartile is within the limit, missed when even the first
    quartile is over it; an interval that straddles the limit is inconclusive: the run
    cannot tell, and more rounds (``--rounds``) or a quieter machine are needed.
    """
    if summary.n == 0 or math.isnan(summary.median):
        return INCONCLUSIVE
    if summary.q3 <= limit:
        return MET
    if summary.q1 > limit:
        return MISSED
    return INCONCLUSIVE


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * pct / 100.0
    below = math.floor(position)
    above = math.ceil(position)
    if below == above:
        return ordered[below]
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def paired_ratios(values: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Each run divided by the baseline run of the same round."""
    if len(values) != len(baseline):
        raise ValueError("paired samples must come from the same rounds")
    return [value / base for value, base in zip(values, baseline, strict=True) if base > 0]


def paired_differences(values: Sequence[float], baseline: Sequence[float]) -> list[float]:
    """Each run minus the baseline run it was paired with."""
    if len(values) != len(baseline):
        raise ValueError("paired samples must come from the same rounds")
    return [value - base for value, base in zip(values, baseline, strict=True)]
