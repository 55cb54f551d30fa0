"""From committed writes to refreshes: which views, when, and by whom.

The capture stage calls ``writes_committed`` once per committed transaction (or
autocommit statement) with the tables it wrote (``apps.ready()`` connects it). Each
dirty view then follows its ``refresh_mode``: refreshed right here (``on_commit``),
handed to the background refresher or Celery (``async``), or left marked (``manual``).
``deferred_refresh()`` holds all of it until its block ends.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ContextDecorator

from .. import conf
from ..capture.source_map import source_map
from ..views.declaration import ViewModel
from . import background
from .passes import ASYNC, ON_COMMIT, mode_of, refresh_pass

logger = logging.getLogger("live_matview.scheduler")


class _Deferral(threading.local):
    def __init__(self) -> None:
        self.depth = 0
        self.views: dict[str, set[ViewModel]] = {}


_deferral = _Deferral()


def writes_committed(using: str, tables: set[str]) -> None:
    """A transaction wrote ``tables`` and committed: act on the views that depend on them."""
    try:
        views = source_map(using).views_for(tables)
    except Exception:  # noqa: BLE001
        logger.exception("Could not tell which views the write to %s dirtied", sorted(tables))
        return
    if views:
        views_dirtied(using, views)


def views_dirtied(using: str, views: set[ViewModel]) -> None:
    """Act on dirty views by their mode. Runs after the writer's commit, so nothing may
    escape from here: the write is done, a refresh problem is logged and retried."""
    if _deferral.depth:
        _deferral.views.setdefault(using, set()).update(views)
        return
    try:
        _dispatch(using, views)
    except Exception:  # noqa: BLE001
        logger.exception(
            "Could not refresh %s after a commit; the marks stay for the next pass",
            sorted(view._meta.label for view in views),
        )


def _dispatch(using: str, views: set[ViewModel]) -> None:
    now = [view for view in views if mode_of(view) == ON_COMMIT]
    later = [view for view in views if mode_of(view) == ASYNC]
    if now:
        result = refresh_pass(using, now, trigger="on_commit", max_wait=conf.lock_wait())
        _retry_later(using, result.failed)
        if result.handed_off:  # another process is refreshing them: do not wait for it
            background.submit(using, result.handed_off)
    if later:
        if conf.async_backend() == "celery":
            # Celery is an optional extra: imported only when this backend is chosen.
            from .celery_backend import submit as send_tasks

            send_tasks(using, later)
        else:
            background.submit(using, later)


def _retry_later(using: str, failed: list[ViewModel]) -> None:
    """Failed on-commit refreshes are retried by the background refresher, with back-off;
    their marks are also there for the worker if this process ends first."""
    if failed:
        background.submit_retry(using, failed)


class deferred_refresh(ContextDecorator):  # noqa: N801  (used like a function)
    """Hold refreshes until the block ends, then refresh each dirty view once.

    Nestable; works across any number of transactions inside the block; per thread.
    """

    def __enter__(self) -> deferred_refresh:
        _deferral.depth += 1
        return self

    def __exit__(self, *exc_info: object) -> None:
        _deferral.depth -= 1
        if _deferral.depth:
            return
        pending, _deferral.views = _deferral.views, {}
        for using, views in pending.items():
            views_dirtied(using, views)
