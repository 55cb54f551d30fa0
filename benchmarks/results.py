"""The JSON record of a run: configuration, environment and every scenario's raw samples,
so a later run (another commit, another server) can be compared number by number."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .agents import REPO
from .config import Config
from .report import ScenarioResult

RESULTS_DIR = REPO / "benchmarks" / "results"


def default_path(started: datetime) -> Path:
    return RESULTS_DIR / f"{started:%Y%m%d-%H%M%S}.json"


def git_revision() -> str | None:
    try:
        revision = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return revision.stdout.strip() or None


def load_average() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load: other work on 2 cores shows in the numbers."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def environment(server: str, agents_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "server": server,
        "load_average_at_end": load_average(),
        "machine": platform.machine(),
        "system": platform.platform(),
        "cpus": _cpu_count(),
        "git": git_revision(),
        "processes": agents_info,
    }


def _cpu_count() -> int | None:
    return os.cpu_count()


def write(
    path: Path,
    *,
    started: datetime,
    argv: list[str],
    config: Config,
    env: dict[str, Any],
    results: list[ScenarioResult],
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "command": ["python", "-m", "benchmarks", *argv],
        "config": config.as_dict(),
        "environment": env,
        "scenarios": [result.as_dict() for result in results],
    }
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
