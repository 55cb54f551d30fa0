"""The in-process background refresher behind ``refresh_mode = "async"`` and retries.

One daemon thread per process. Views are queued with a due time: ``refresh_debounce``
after the view's last refresh started (so a burst of writes collapses into one trailing
refresh, never into none), or the back-off time of a failed view. The thread opens its own
database connections and closes them after every pass, so it never holds one idle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from django.db import connections

from .. import conf
from ..models import ManagedView
from ..views.declaration import ViewModel
from .passes import refresh_pass, with_dependents

logger = logging.getLogger("live_matview.background")

BUSY_RETRY_SECONDS = 0.05  # a view another process was refreshing is tried again soon


class BackgroundRefresher:
    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._due: dict[tuple[str, ViewModel], tuple[float, str]] = {}
        self._last_start: dict[tuple[str, ViewModel], float] = {}
        self._running = False
        self._thread: threading.Thread | None = None

    def submit(self, using: str, views: Iterable[ViewModel], *, trigger: str = "async") -> None:
        now = time.monotonic()
        with self._condition:
            for view in views:
                key = (using, view)
                debounce = view.refresh_debounce or 0.0
                due = max(now, self._last_start.get(key, -1e18) + debounce)
                if key not in self._due or due < self._due[key][0]:
                    self._due[key] = (due, trigger)
            self._ensure_thread()
            self._condition.notify_all()

    def submit_at(self, using: str, views: Iterable[ViewModel], delay: float, trigger: str) -> None:
        due = time.monotonic() + delay
        with self._condition:
            for view in views:
                key = (using, view)
                if key not in self._due or due < self._due[key][0]:
                    self._due[key] = (due, trigger)
            self._ensure_thread()
            self._condition.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (due in the future counts as queued)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while self._due or self._running:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def clear(self) -> None:
        """Forget everything queued and wait for a running pass (test isolation)."""
        with self._condition:
            self._due.clear()
            self._last_start.clear()
            while self._running:
                self._condition.wait()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name="live_matview-refresher", daemon=True
            )
            self._thread.start()

    def _take_due(self) -> dict[str, dict[ViewModel, str]] | None:
        """Wait for the next due views and take them; ``None`` when idle for a while."""
        with self._condition:
            while True:
                now = time.monotonic()
                ready = {key: item for key, item in self._due.items() if item[0] <= now}
                if ready:
                    for key in ready:
                        del self._due[key]
                        self._last_start[key] = now
                    self._running = True
                    batch: dict[str, dict[ViewModel, str]] = {}
                    for (using, view), (_due, trigger) in ready.items():
                        batch.setdefault(using, {})[view] = trigger
                    return batch
                if not self._due:
                    self._condition.notify_all()
                    if not self._condition.wait(timeout=30):
                        self._thread = None
                        return None
                    continue
                self._condition.wait(min(item[0] for item in self._due.values()) - now)

    def _run(self) -> None:
        while (batch := self._take_due()) is not None:
            try:
                for using, views in batch.items():
                    by_trigger: dict[str, list[ViewModel]] = {}
                    for view, trigger in views.items():
                        by_trigger.setdefault(trigger, []).append(view)
                    for trigger, group in by_trigger.items():
                        # With the views built on them: a parent's refresh marks them.
                        result = refresh_pass(
                            using, with_dependents(using, set(group)), trigger=trigger, wait=False
                        )
                        self._requeue(using, result.skipped, result.failed)
            except Exception:  # noqa: BLE001  (keep the thread alive)
                logger.exception("Background refresh pass failed")
            finally:
                connections.close_all()
                with self._condition:
                    self._running = False
                    self._condition.notify_all()

    def _requeue(self, using: str, skipped: list[ViewModel], failed: list[ViewModel]) -> None:
        if skipped:
            self.submit_at(using, skipped, BUSY_RETRY_SECONDS, "async")
        if failed:
            submit_retry(using, failed)


_refresher = BackgroundRefresher()


def submit(using: str, views: Iterable[ViewModel]) -> None:
    """Queue async refreshes (debounced per view)."""
    _refresher.submit(using, views)


def submit_retry(using: str, views: Iterable[ViewModel]) -> None:
    """Queue failed views again at their back-off time."""
    for view in views:
        state = ManagedView.objects.using(using).filter(view_name=view._meta.db_table).first()
        failures = state.consecutive_failures if state else 1
        _refresher.submit_at(using, [view], conf.retry_backoff(failures), "retry")


def wait_idle(timeout: float | None = None) -> bool:
    """Wait until the background refresher has nothing queued or running."""
    return _refresher.wait_idle(timeout)


def clear() -> None:
    """Drop queued background work (tests use it between cases)."""
    _refresher.clear()
