"""A refresh pass: each view of a set once, parents before children, failures contained.

Every way a refresh runs (on commit, the background thread, Celery, the worker,
``refresh_dirty()``) goes through ``refresh_pass``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from .. import conf
from ..capture.source_map import source_map
from ..exceptions import RefreshError
from ..models import DirtyMark, KeyMark, ManagedView, MaterializedViewRefreshLog
from ..schema.database_graph import database_graph, managed_models
from ..views.declaration import ViewModel
from ..views.graph import reachable
from ..views.incremental import is_incremental
from .by_key import refresh_by_key
from .full import Skipped, refresh_view

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
    handed_off: list[ViewModel] = field(default_factory=list)  # the lock wait ran out


def refresh_pass(
    using: str,
    views: Iterable[ViewModel],
    *,
    trigger: str,
    wait: bool = True,
    max_wait: float | None = None,
    honour_backoff: bool = False,
) -> PassResult:
    """Refresh each view once, parents before children. A failure never escapes: it is
    logged, its marks stay, and the views built on it wait for the next pass.

    ``max_wait`` bounds the wait for a view another process is refreshing; such a view,
    and the views built on it, end up in ``handed_off`` and ``waiting``."""
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
    done: set[ViewModel] = set()
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
            if is_incremental(view):
                log = refresh_by_key(
                    view,
                    using=using,
                    trigger=trigger,
                    wait=wait,
                    only_if_marked=True,
                    max_wait=max_wait,
                    refreshed=done,
                )
            else:
                log = refresh_view(
                    view,
                    using=using,
                    trigger=trigger,
                    wait=wait,
                    max_wait=max_wait,
                    only_if_marked=True,
                    refreshed=done,
                )
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
        elif log is Skipped.HANDED_OFF:
            result.handed_off.append(view)
            blocked |= graph.descendants([view])
        elif log is Skipped.CLEAN:
            result.covered.append(view)
        else:
            result.refreshed.append(log)
            done.add(view)
    return result


def _retry_times(using: str, views: list[ViewModel]) -> dict[str, Any]:
    names = [view._meta.db_table for view in views]
    rows = ManagedView.objects.using(using).filter(view_name__in=names, next_retry_at__isnull=False)
    return dict(rows.values_list("view_name", "next_retry_at"))


def marked_views(using: str) -> set[ViewModel]:
    """The view models of database ``using`` that have pending marks."""
    by_name = {view._meta.db_table: view for view in managed_models(using)}
    names = set(DirtyMark.objects.using(using).values_list("view_name", flat=True).distinct())
    names |= set(KeyMark.objects.using(using).values_list("view_name", flat=True).distinct())
    return {by_name[name] for name in names if name in by_name}


def refresh_dirty(using: str | None = None) -> PassResult:
    """Refresh every view that has pending marks in database ``using``, now."""
    alias = using or DEFAULT_DB_ALIAS
    return refresh_pass(alias, with_dependents(alias, marked_views(alias)), trigger="drain")


def with_dependents(using: str, views: set[ViewModel]) -> set[ViewModel]:
    """The views plus every view built on them or listing them in ``refresh_on``: their
    refresh will mark those."""
    found = views | database_graph(using).descendants(views)
    return found | reachable(found, source_map(using).dependents)
