"""``migrate``, then bring the materialized views in line with the models.

Every option of ``migrate`` is accepted and forwarded, because this command *is*
Django's migrate command with a view sync after it. ``--check`` and ``--plan`` cover
the views as well as the migrations.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.core.management.commands import migrate

from ...exceptions import LiveMatviewError
from ...migrate_hooks import report_lines, sync_done_by_caller
from ...processor import plan_views, sync_views
from ...schema.lock import holding_sync_lock
from ...schema.migration_guard import views_out_of_the_way
from ...schema.planning import SyncPlan

HELP_OF_OWN_OPTIONS = {
    "--check": "Exit with a non-zero status if migrations are unapplied or any "
    "materialized view, index or capture trigger would change; changes nothing.",
    "--plan": "Show the migrations that would run and the materialized view changes that "
    "would follow (create, recreate, reindex, adopt, drop, capture); changes nothing.",
}

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
        "materialized views (parents before children, in one transaction). One run at a "
        "time per database: a second waits up to LIVE_MATVIEW_SYNC_LOCK_TIMEOUT seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        for action in parser._actions:  # migrate's options, described as they act here
            for flag, text in HELP_OF_OWN_OPTIONS.items():
                if flag in action.option_strings:
                    action.help = text

    def handle(self, *args: Any, **options: Any) -> None:
        database = options["database"]
        if options["plan"] or options["check_unapplied"]:
            self._dry_run(*args, **options)
            return
        try:
            # Two deploys must not interleave their migrations or view syncs; the lock is
            # transaction-scoped on a connection of its own, so no pooler can leak it.
            with holding_sync_lock(database), sync_done_by_caller(database):
                with views_out_of_the_way(database) as guard:
                    super().handle(*args, **options)
                if guard.dropped and self.verbosity >= 1:
                    self.stdout.write(
                        f"  Dropped {', '.join(guard.dropped)} for a column change and "
                        f"created {', '.join(guard.restored) or 'none'} again in the same "
                        "migration."
                    )
                plan = sync_views(database)
        except LiveMatviewError as exc:
            raise CommandError(str(exc)) from exc
        self._report(plan, applied=True)

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
        for number, line in enumerate(
            report_lines(plan, applied=applied, verbosity=self.verbosity)
        ):
            self.stdout.write(line, self.style.MIGRATE_HEADING if number == 0 else None)
