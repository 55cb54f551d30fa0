"""Plain ``migrate`` brings the views in line too: the column-type guard during its
migrations (``pre_migrate`` of the first app) and the one-transaction sync after the last
app's (``post_migrate``), once per run and database. ``apps.ready()`` connects them.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from django.apps import apps
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from . import conf
from .exceptions import LiveMatviewError
from .processor import sync_views
from .schema import introspection
from .schema.migration_guard import views_out_of_the_way
from .schema.planning import SyncPlan


class _MigrateRun(threading.local):
    """Per thread: the databases whose ``migrate`` is running, with the column guard
    entered for each; and those whose sync the running ``migrate_with_views`` does itself."""

    def __init__(self) -> None:
        self.guards: dict[str, ExitStack] = {}
        self.synced_by_command: set[str] = set()


_migrate_run = _MigrateRun()


@contextmanager
def sync_done_by_caller(using: str) -> Iterator[None]:
    """``migrate_with_views`` syncs (and reports) itself after ``migrate``."""
    _migrate_run.synced_by_command.add(using)
    try:
        yield
    finally:
        _migrate_run.synced_by_command.discard(using)


def _models_apps() -> list[Any]:
    return [config for config in apps.get_app_configs() if config.models_module is not None]


def _hook_applies(using: str, kwargs: dict[str, Any]) -> bool:
    """``migrate`` passes a ``plan``; ``flush`` (which test cases run) does not."""
    return (
        "plan" in kwargs and conf.sync_on_migrate() and using not in _migrate_run.synced_by_command
    )


def migrate_starting(sender: Any, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """``pre_migrate`` receiver: before the first app's migrations, let column changes
    drop and restore the views in the way, as ``migrate_with_views`` does."""
    if sender is not _models_apps()[0] or not _hook_applies(using, kwargs):
        return
    leftover = _migrate_run.guards.pop(using, None)
    if leftover is not None:  # a migrate of this thread that failed before post_migrate
        leftover.close()
    stack = ExitStack()
    stack.enter_context(views_out_of_the_way(using))
    _migrate_run.guards[using] = stack


def migrate_finished(
    sender: Any, using: str = DEFAULT_DB_ALIAS, verbosity: int = 1, **kwargs: Any
) -> None:
    """``post_migrate`` receiver: after the last app, sync the views of database
    ``using``, once per ``migrate`` run; a failure fails the ``migrate``."""
    if sender is not _models_apps()[-1] or not _hook_applies(using, kwargs):
        return
    guard = _migrate_run.guards.pop(using, None)
    if guard is not None:
        guard.close()
    stdout = kwargs.get("stdout") or sys.stdout
    with connections[using].cursor() as cursor:
        missing = introspection.relation_oid(cursor, "live_matview_source") is None
    if missing:  # e.g. "migrate shop 0001" on a new database, before live_matview's own
        if verbosity >= 1:
            stdout.write("Materialized views: not synced, live_matview is not migrated yet.\n")
        return
    try:
        plan = sync_views(using)
    except LiveMatviewError as exc:
        raise CommandError(str(exc)) from exc
    for line in report_lines(plan, applied=True, verbosity=verbosity):
        stdout.write(line + "\n")


def report_lines(plan: SyncPlan, *, applied: bool, verbosity: int) -> list[str]:
    """What a sync did (or would do), as ``migrate_with_views`` and ``migrate`` print it."""
    if verbosity < 1:
        return []
    lines = ["Materialized views:" if applied else "Planned materialized view changes:"]
    if not plan.has_changes:
        lines.append("  No changes.")
    lines.extend(
        f"  {action.describe()}" for action in (plan.changes if verbosity < 2 else plan.actions)
    )
    lines.extend(f"  capture  {change}" for change in plan.capture_changes)
    return lines
