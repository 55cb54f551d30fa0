"""``migrate``, then bring the materialized views in line with the models.

Every option of ``migrate`` is accepted and forwarded, because this command *is*
Django's migrate command with a view sync after it.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands import migrate
from django.db import connections

from ...exceptions import LiveMatviewError
from ...processor import plan_views, sync_views
from ...schema.migration_guard import views_out_of_the_way
from ...schema.planning import SyncPlan
from ...schema.sync import lock_sync, unlock_sync

_BLOCKING_VIEW = re.compile(r"rule _RETURN on materialized view (\w+) depends on column")


def extract_mv_name(line: str) -> str | None:
    """The view named by PostgreSQL's "cannot alter type of a column used by a view" detail.

    Kept from django-materialized-view; this command no longer needs it (it moves the views
    out of the way before ``migrate`` alters their columns).

    >>> extract_mv_name("rule _RETURN on materialized view shop_totals depends on column x")
    'shop_totals'
    """
    match = _BLOCKING_VIEW.search(line)
    return match.group(1) if match else None


class Command(migrate.Command):
    help = (
        "Updates database schema like migrate, then creates, recreates and drops "
        "materialized views (parents before children, in one transaction)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        database = options["database"]
        if options["plan"] or options["check_unapplied"]:
            self._dry_run(*args, **options)
            return
        connection = connections[database]
        # A session lock: two deploys must not interleave their migrations or view syncs.
        lock_sync(connection, session=True)
        try:
            with views_out_of_the_way(database) as guard:
                super().handle(*args, **options)
            if guard.dropped and self.verbosity >= 1:
                self.stdout.write(
                    f"  Dropped {', '.join(guard.dropped)} for a column change and created "
                    f"{', '.join(guard.restored) or 'none'} again in the same migration."
                )
            try:
                plan = sync_views(database)
            except LiveMatviewError as exc:
                raise CommandError(str(exc)) from exc
            self._report(plan, applied=True)
        finally:
            unlock_sync(connection)

    def _dry_run(self, *args: Any, **options: Any) -> None:
        migrations_pending = False
        try:
            super().handle(*args, **options)
        except SystemExit as exit_:
            migrations_pending = exit_.code not in (0, None)
        try:
            plan = plan_views(options["database"])
        except LiveMatviewError as exc:
            raise CommandError(str(exc)) from exc
        self._report(plan, applied=False)
        if options["check_unapplied"] and (migrations_pending or plan.has_changes):
            sys.exit(1)

    def _report(self, plan: SyncPlan, *, applied: bool) -> None:
        if self.verbosity < 1:
            return
        heading = "Materialized views:" if applied else "Planned materialized view changes:"
        self.stdout.write(heading, self.style.MIGRATE_HEADING)
        if not plan.has_changes:
            self.stdout.write("  No changes.")
        for action in plan.changes if self.verbosity < 2 else plan.actions:
            self.stdout.write(f"  {action.describe()}")
        for change in plan.capture_changes:
            self.stdout.write(f"  capture  {change}")
