"""From committed writes to refreshes: which views, when, in which order, by whom.

``writes_committed`` is called once per committed transaction (or autocommit statement)
with the tables it wrote. Each dirty view then follows its ``refresh_mode``: refreshed
right here (``on_commit``), handed to the background refresher (``async``), or left
marked (``manual``). ``deferred_refresh()`` holds all of it until its block ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from contextlib import ContextDecorator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from . import conf
from .dependencies import database_graph, managed_models
from .exceptions import RefreshError
from .models import DirtyMark, ManagedView
from .refresh import Skipped, refresh_view
from .sources import source_map

if TYPE_CHECKING:
    from .dependencies import ViewModel
    from .models import MaterializedViewRefreshLog

logger = logging.getLogger("live_matview.scheduler")

ON_COMMIT, ASYNC, MANUAL = conf.REFRESH_MODES


def mode_of(view: ViewModel) -> str:
    return view.refresh_mode or conf.refresh_mode()


@dataclass
class PassResult:
    """What one refresh pass did, view by view."""

    refreshed: list[MaterializedViewRefreshLog] = field(default_factory=list)
    failed: list[ViewModel] = field(default_factory=list)
    skipped: list[ViewModel] = field(default_factory=list)  # another process holds its lock
    waiting: list[ViewModel] = field(default_factory=list)  # in back-off, or a parent failed
    covered: list[ViewModel] = field(default_factory=list)  # no marks left: already fresh


def refresh_pass(
    using: str,
    views: Iterable[ViewModel],
    *,
    trigger: str,
    wait: bool = True,
    honour_backoff: bool = False,
) -> PassResult:
    """Refresh each view once, parents before children. A failure never escapes: it is
    logged, its marks stay, and the views built on it wait for the next pass."""
    result = PassResult()
    wanted = set(views)
    if not wanted:
        return result
    try:
        ordered = database_graph(using).order(wanted)
        retry_at = _retry_times(using, ordered) if honour_backoff else {}
    except Exception:  # noqa: BLE001  (the writer's commit must never see this)
        logger.exception("Could not plan refreshes of %s", sorted(v._meta.label for v in wanted))
        result.failed.extend(wanted)
        return result
    graph = database_graph(using)
    blocked: set[ViewModel] = set()
    now = timezone.now()
    for view in ordered:
        due = retry_at.get(view._meta.db_table)
        if due is not None and due > now:
            result.waiting.append(view)
            blocked |= graph.descendants([view])
            continue
        if view in blocked:
            result.waiting.append(view)
            continue
        try:
            log = refresh_view(view, using=using, trigger=trigger, wait=wait, only_if_marked=True)
        except RefreshError:
            result.failed.append(view)
            blocked |= graph.descendants([view])
            continue
        except Exception:  # noqa: BLE001  (e.g. the database went away)
            logger.exception("Refresh of %s failed unexpectedly", view._meta.label)
            result.failed.append(view)
            blocked |= graph.descendants([view])
            continue
        if log is Skipped.BUSY:
            result.skipped.append(view)
        elif log is Skipped.CLEAN:
            result.covered.append(view)
        else:
            result.refreshed.append(log)
    return result


def _retry_times(using: str, views: list[ViewModel]) -> dict[str, Any]:
    names = [view._meta.db_table for view in views]
    rows = ManagedView.objects.using(using).filter(view_name__in=names, next_retry_at__isnull=False)
    return dict(rows.values_list("view_name", "next_retry_at"))


# -- dispatch of committed writes ---------------------------------------------------------


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
        result = refresh_pass(using, now, trigger="on_commit")
        _retry_later(using, result.failed)
    if later:
        if conf.async_backend() == "celery":
            from .tasks import submit as send_tasks

            send_tasks(using, later)
        else:
            from .background import submit

            submit(using, later)


def _retry_later(using: str, failed: list[ViewModel]) -> None:
    """Failed on-commit refreshes are retried by the background refresher, with back-off;
    their marks are also there for the worker if this process ends first."""
    if failed:
        from .background import submit_retry

        submit_retry(using, failed)


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


def marked_views(using: str) -> set[ViewModel]:
    """The view models of database ``using`` that have pending marks."""
    by_name = {view._meta.db_table: view for view in managed_models(using)}
    names = DirtyMark.objects.using(using).values_list("view_name", flat=True).distinct()
    return {by_name[name] for name in names if name in by_name}


def refresh_dirty(using: str | None = None) -> PassResult:
    """Refresh every view that has pending marks in database ``using``, now."""
    alias = using or DEFAULT_DB_ALIAS
    return refresh_pass(alias, with_dependents(alias, marked_views(alias)), trigger="drain")


def with_dependents(using: str, views: set[ViewModel]) -> set[ViewModel]:
    """The views plus every view built on them: their refresh will mark those."""
    return views | database_graph(using).descendants(views)
