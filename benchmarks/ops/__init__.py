"""What an agent process can be asked to do; runs inside the benchmark project's Django.

Each operation times only the part it is named after and returns plain JSON values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import coalescing, freshness, refreshes, setup, writes

OPERATIONS: dict[str, Callable[..., Any]] = {
    "info": setup.info,
    "setup_schema": setup.setup_schema,
    "write": writes.write,
    "coalesce": coalescing.coalesce,
    "refresh": refreshes.refresh,
    "latency": freshness.latency,
}
