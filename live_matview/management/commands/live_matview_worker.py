"""Refresh the views that other clients, async views and failed refreshes left marked."""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS

from ...refresh.worker import Worker


class Command(BaseCommand):
    help = (
        "Refreshes marked materialized views: wakes on NOTIFY, polls every --interval "
        "seconds, stops cleanly on SIGTERM/SIGINT. Several workers may run at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--interval", type=float, default=5.0, help="Seconds between polls (default 5)."
        )
        parser.add_argument("--once", action="store_true", help="One pass, then exit (cron).")
        parser.add_argument(
            "--no-listen", action="store_true", help="Poll only; do not LISTEN for NOTIFY."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["verbosity"] >= 1:
            handler = logging.StreamHandler(sys.stdout)
            handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
            root = logging.getLogger("live_matview")
            root.addHandler(handler)
            root.setLevel(logging.INFO if options["verbosity"] == 1 else logging.DEBUG)
        worker = Worker(
            using=options["database"],
            interval=options["interval"],
            listen=not options["no_listen"],
        )
        if options["once"]:
            result = worker.run_once()
            self.stdout.write(
                f"{len(result.refreshed)} refreshed, {len(result.failed)} failed, "
                f"{len(result.skipped)} left to other workers or later."
            )
            return
        worker.install_signal_handlers()
        self.stdout.write(
            f"live_matview worker on database {options['database']!r}, "
            f"polling every {options['interval']}s"
            + ("" if options["no_listen"] else " and listening for NOTIFY")
        )
        self.stdout.flush()  # a supervisor reading a pipe or file sees it at once
        worker.run()
        self.stdout.write("live_matview worker stopped.")
