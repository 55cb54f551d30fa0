"""What an agent process can be asked to do; runs inside the benchmark project's Django.

Each operation times only the part it is named after and returns plain JSON values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import coalescing, freshness, incremental, refreshes, setup, writes
from .statements import count_statements


def statements(operation: str, args: dict[str, Any]) -> dict[str, int | None]:
    """The SQL statements one run of ``operation`` sends (an extra, untimed run)."""
    return count_statements(lambda: OPERATIONS[operation](**args))


OPERATIONS: dict[str, Callable[..., Any]] = {
    "info": setup.info,
    "setup_schema": setup.setup_schema,
    "write": writes.write,
    "coalesce": coalescing.coalesce,
    "refresh": refreshes.refresh,
    "tiny_pass": refreshes.tiny_pass,
    "latency": freshness.latency,
    "ledger_save": incremental.ledger_save,
    "ledger_bulk": incremental.ledger_bulk,
    "ledger_refresh": incremental.ledger_refresh,
    "pg_ivm_available": incremental.pg_ivm_available,
    "statements": statements,
}
