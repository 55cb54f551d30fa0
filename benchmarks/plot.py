"""Pictures where they say more than a table: refresh time and write overhead against
table size (scenario 5), and the spread of freshness latencies (scenario 4).

matplotlib is optional (benchmarks/requirements.txt): without it nothing is drawn and
the run says so.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from .report import ScenarioResult


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def draw(results: list[ScenarioResult], stem: Path) -> list[Path]:
    """PNG files written next to the JSON (``<stem>-scale.png``, ...)."""
    import matplotlib

    matplotlib.use("Agg")
    written = []
    by_key = {result.key: result for result in results if result.data}
    if "scale" in by_key:
        written.append(_scale(by_key["scale"], stem.with_name(stem.name + "-scale.png")))
    if "freshness" in by_key:
        written.append(_latency(by_key["freshness"], stem.with_name(stem.name + "-latency.png")))
    return written


def _scale(result: ScenarioResult, path: Path) -> Path:
    import matplotlib.pyplot as plt

    by_size = result.data["sizes"]
    sizes = sorted(int(size) for size in by_size)
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    labels = list(by_size[str(sizes[0])]["refresh"])
    for label in labels:
        medians = [statistics.median(by_size[str(size)]["refresh"][label]) * 1000 for size in sizes]
        left.plot(
            sizes,
            medians,
            "-" if label.startswith("live") else "--",
            color="tab:red" if "CONCURRENTLY" in label else "tab:blue",
            marker="o",
            label=label,
        )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="orders in the source table",
        ylabel="refresh time, ms (median)",
        title="Refresh of CustomerTotals (1 row per 100 orders)",
    )
    left.grid(True, which="both", alpha=0.3)
    left.legend()
    for kind, limit in (("save_txn", 1.10), ("bulk_create", 1.05)):
        for variant in ("triggers", "signals"):
            ratios = []
            for size in sizes:
                samples = by_size[str(size)]["writes"][kind]
                pairs = zip(samples[variant], samples["baseline"], strict=True)
                ratios.append(statistics.median(value / base for value, base in pairs))
            right.plot(sizes, ratios, marker="o", label=f"{kind}, {variant} (bar {limit:.2f}×)")
    right.axhline(1.10, color="grey", linestyle=":", linewidth=1)
    right.axhline(1.05, color="grey", linestyle="--", linewidth=1)
    right.axhline(1.0, color="black", linewidth=0.5)
    right.set(
        xscale="log",
        xlabel="orders in the source table",
        ylabel="time ÷ baseline (median of paired ratios)",
        title="Write overhead of capture",
    )
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _latency(result: ScenarioResult, path: Path) -> Path:
    import matplotlib.pyplot as plt

    samples = result.data["samples"]
    labels = [label for label, values in samples.items() if values]
    data = [
        [s["commit_to_fresh"] * 1000 for s in samples[label] if s["commit_to_fresh"] is not None]
        for label in labels
    ]
    figure, axis = plt.subplots(figsize=(9, 4.5))
    axis.boxplot(data, vert=False, whis=(1, 99))
    axis.set_yticks(range(1, len(labels) + 1), labels)
    axis.set(
        xscale="log",
        xlabel="commit → a reader sees the write in the view, ms",
        title="Freshness latency by refresh mode (whiskers: p1–p99)",
    )
    axis.grid(True, axis="x", which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
