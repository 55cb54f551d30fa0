"""Helpers for testing code that uses materialized views.

- ``create_views()`` builds the views in the test database (the pytest fixture
  ``live_matview_views`` does it once per session);
- ``capture_refreshes()`` records the refreshes a block of code caused, to assert on them;
- ``wait_for_background_refreshes()`` waits until async refreshes are done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS

from ..signals import refresh_failed, view_refreshed

if TYPE_CHECKING:
    from ..schema.planning import SyncPlan

# Imports of models happen inside the functions: pytest imports this package (through
# the plugin) before Django is set up.

__all__ = [
    "RefreshRecorder",
    "capture_refreshes",
    "create_views",
    "wait_for_background_refreshes",
]


def create_views(using: str = DEFAULT_DB_ALIAS) -> SyncPlan:
    """Create (or bring up to date) every materialized view in database ``using``."""
    from ..processor import sync_views

    return sync_views(using)


@dataclass
class RefreshRecorder:
    """The refreshes seen while ``capture_refreshes()`` was active, in the order they ended."""

    refreshed: list[tuple[Any, Any]] = field(default_factory=list)  # (model, log)
    failed: list[tuple[Any, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, model: Any) -> int:
        with self._lock:
            return sum(1 for refreshed, _log in self.refreshed if refreshed is model)

    @property
    def order(self) -> list[str]:
        """Labels of the refreshed views, in order."""
        with self._lock:
            return [model._meta.label for model, _log in self.refreshed]

    def assert_refreshed(self, *models: Any, times: int = 1) -> None:
        """Each model was refreshed exactly ``times`` times."""
        wrong = {m._meta.label: self.count(m) for m in models if self.count(m) != times}
        if wrong:
            raise AssertionError(
                f"Expected {times} refresh(es) of each of {[m._meta.label for m in models]}; "
                f"got {wrong}. All refreshes: {self.order}"
            )

    def assert_not_refreshed(self, *models: Any) -> None:
        self.assert_refreshed(*models, times=0)

    def _on_refreshed(self, sender: Any, log: Any, **kwargs: Any) -> None:
        with self._lock:
            self.refreshed.append((sender, log))

    def _on_failed(self, sender: Any, log: Any, **kwargs: Any) -> None:
        with self._lock:
            self.failed.append((sender, log))


@contextmanager
def capture_refreshes() -> Iterator[RefreshRecorder]:
    """Record every refresh (in any thread) that ends inside the block."""
    recorder = RefreshRecorder()
    view_refreshed.connect(recorder._on_refreshed, weak=False)
    refresh_failed.connect(recorder._on_failed, weak=False)
    try:
        yield recorder
    finally:
        view_refreshed.disconnect(recorder._on_refreshed)
        refresh_failed.disconnect(recorder._on_failed)


def wait_for_background_refreshes(timeout: float = 30.0) -> None:
    """Block until the async refresher is idle; ``TimeoutError`` after ``timeout`` seconds."""
    from ..refresh.background import wait_idle

    if not wait_idle(timeout):
        raise TimeoutError(f"Background refreshes still running after {timeout} s.")
