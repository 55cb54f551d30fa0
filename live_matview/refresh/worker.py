"""The drain loop behind ``live_matview_worker``: refresh what other processes marked.

Within one database, PostgreSQL is the coordinator: marks say what is dirty, a
per-view transaction-scoped advisory lock says who refreshes it (the others move on),
and NOTIFY only wakes workers early; polling every ``interval`` seconds covers lost
notifications and connections that cannot LISTEN (PgBouncer in transaction mode).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils import timezone

from .._compat import wait_for_notification
from ..models import ManagedView
from ..views.declaration import ViewModel
from .log import prune_log
from .passes import PassResult, marked_views, refresh_pass, with_dependents

logger = logging.getLogger("live_matview.worker")

CHANNEL = "live_matview"
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
BUSY_RETRY_SECONDS = 0.05  # another worker holds a view: look again soon
PRUNE_INTERVAL = 3600.0  # seconds between prunings of the refresh log


@dataclass
class Worker:
    using: str = "default"
    interval: float = 5.0
    listen: bool = True
    stop_event: threading.Event = field(default_factory=threading.Event)
    passes: int = 0
    _listener: Any = None
    _next_due: Any = None
    _pruned_at: float | None = None

    def stop(self, *_args: object) -> None:
        """Finish the refresh under way, then leave (SIGTERM / SIGINT)."""
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def run_once(self) -> PassResult:
        """One pass over every marked view (and the views built on them)."""
        marked = marked_views(self.using)
        if not marked:
            return PassResult()
        due, _later = self._debounced(marked)
        result = refresh_pass(
            self.using,
            with_dependents(self.using, due),
            trigger="worker",
            wait=False,
            honour_backoff=True,
        )
        self.passes += 1
        return result

    def run(self) -> None:
        """Loop until stopped; survives the database going away and coming back.

        Every query of a round (the pass, pruning the log, working out how long to sleep)
        is inside the handling below: a server that goes away at any point costs a
        reconnect with back-off, never the worker."""
        failures = 0
        while not self.stop_event.is_set():
            try:
                wait = self._round()
                failures = 0
            except (OperationalError, InterfaceError) as exc:
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                logger.warning("Database unavailable (%s); retrying in %.1fs", exc, delay)
                self._reset_connections()
                self.stop_event.wait(delay)
                continue
            except Exception:  # noqa: BLE001  (a worker outlives any one bad pass)
                logger.exception("Worker pass failed")
                self._reset_connections()
                self.stop_event.wait(self.interval)
                continue
            self._sleep(wait)
        self._close_listener()
        connections.close_all()

    def _round(self) -> float:
        """One pass, and log pruning when due; returns the seconds to sleep after it."""
        self._ensure_listener()
        result = self.run_once()
        self.prune_if_due()
        return BUSY_RETRY_SECONDS if result.skipped else self._next_wait(result)

    def prune_if_due(self, now: float | None = None) -> int:
        """Prune the refresh log at most once per ``PRUNE_INTERVAL`` seconds."""
        now = time.monotonic() if now is None else now
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_INTERVAL:
            return 0
        deleted = prune_log(self.using)
        self._pruned_at = now
        return deleted

    def _debounced(self, views: set[ViewModel]) -> tuple[set[ViewModel], dict[ViewModel, Any]]:
        """Split views into due now and held back by their ``refresh_debounce`` window."""
        windows = {view: view.refresh_debounce for view in views if view.refresh_debounce}
        if not windows:
            return views, {}
        names = [view._meta.db_table for view in windows]
        last = dict(
            ManagedView.objects.using(self.using)
            .filter(view_name__in=names)
            .values_list("view_name", "last_refreshed_at")
        )
        now = timezone.now()
        later = {}
        for view, seconds in windows.items():
            refreshed = last.get(view._meta.db_table)
            if refreshed is not None and refreshed + timedelta(seconds=seconds) > now:
                later[view] = refreshed + timedelta(seconds=seconds)
        self._next_due = min(later.values()) if later else None
        return views - set(later), later

    def _next_wait(self, result: PassResult) -> float:
        """The poll interval, shortened to the next debounce window or retry that ends."""
        wait = self.interval
        due = [self._next_due] if self._next_due is not None else []
        if result.waiting:
            due += list(
                ManagedView.objects.using(self.using)
                .filter(view_name__in=[view._meta.db_table for view in result.waiting])
                .exclude(next_retry_at=None)
                .values_list("next_retry_at", flat=True)
            )
        for moment in due:
            wait = min(wait, max(0.01, (moment - timezone.now()).total_seconds()))
        return wait

    def _sleep(self, seconds: float) -> None:
        """Wait for a NOTIFY, the interval, or a stop request, whichever comes first."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            step = min(remaining, 0.5)  # stay responsive to SIGTERM
            if self._listener is None:
                self.stop_event.wait(step)
                continue
            try:
                if wait_for_notification(self._listener.connection, step):
                    return
            except Exception:  # noqa: BLE001  (a broken listener only costs the wake-ups)
                self._close_listener()

    def _ensure_listener(self) -> None:
        if not self.listen or self._listener is not None:
            return
        listener = connections.create_connection(self.using)
        try:
            listener.ensure_connection()
            listener.set_autocommit(True)
            with listener.cursor() as cursor:
                cursor.execute(f"LISTEN {CHANNEL}")
        except DatabaseError as exc:
            logger.info("Cannot LISTEN (%s); polling every %.1fs only", exc, self.interval)
            listener.close()
            self.listen = False
            return
        self._listener = listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):  # it may be broken already
                self._listener.close()
            self._listener = None

    def _reset_connections(self) -> None:
        self._close_listener()
        for connection in connections.all(initialized_only=True):
            with contextlib.suppress(Exception):  # it may be broken already
                connection.close()
