"""Delete old refresh log rows, for cron; the worker does the same once an hour."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from ... import conf
from ...refresh.log import prune_log


class Command(BaseCommand):
    help = (
        "Deletes refresh log rows older than LIVE_MATVIEW_LOG_RETENTION (or --days), "
        "keeping the latest row of each view."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--days",
            type=float,
            default=None,
            help="Keep this many days instead of LIVE_MATVIEW_LOG_RETENTION.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] is not None and options["days"] < 0:
            raise CommandError(f"--days must be 0 or more, not {options['days']}.")
        retention = (
            conf.log_retention() if options["days"] is None else timedelta(days=options["days"])
        )
        if retention is None:
            if options["verbosity"] >= 1:
                self.stdout.write("LIVE_MATVIEW_LOG_RETENTION is None: the log is kept whole.")
            return
        deleted = prune_log(options["database"], retention)
        if options["verbosity"] >= 1:
            self.stdout.write(
                self.style.SUCCESS(f"Deleted {deleted} refresh log rows older than {retention}.")
            )
