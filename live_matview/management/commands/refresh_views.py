"""Refresh all materialized views, or the named ones, parents before children."""

from __future__ import annotations

import argparse
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from ...exceptions import RefreshError
from ...refresh.full import Skipped, refresh_view
from ...refresh.passes import marked_views, with_dependents
from ...schema.database_graph import database_graph, managed_models
from ...views.registry import resolve_model


class Command(BaseCommand):
    help = "Refreshes materialized views in dependency order (all of them, or those named)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("views", nargs="*", metavar="app_label.Model")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--concurrently", action="store_const", const=True, dest="concurrently", default=None
        )
        mode.add_argument(
            "--no-concurrently", action="store_const", const=False, dest="concurrently"
        )
        parser.add_argument(
            "--dirty",
            action="store_true",
            help="Only views with pending marks (and the views built on them).",
        )
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="Show a line per view as it refreshes (default: only on a terminal).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        available = managed_models(using)
        selected = available
        if options["views"]:
            selected = []
            for label in options["views"]:
                model = resolve_model(label)
                if model not in available:
                    raise CommandError(
                        f"{label} is not a materialized view model of database {using!r}; "
                        f"choose from: {', '.join(m._meta.label for m in available)}."
                    )
                selected.append(model)
        if options["dirty"]:
            dirty = marked_views(using) & set(selected)
            selected = list(with_dependents(using, dirty) & set(selected))
        failures = []
        ordered = database_graph(using).order(selected)
        progress = options["progress"]
        if progress is None:
            progress = self.stdout.isatty()
        progress = progress and options["verbosity"] >= 1
        started = time.monotonic()
        modes: dict[str, int] = {}
        for number, model in enumerate(ordered, start=1):
            if progress:
                self.stdout.write(f"  [{number}/{len(ordered)}] {model._meta.label} ...", ending="")
                self.stdout.flush()
            clock = time.monotonic()
            try:
                log = refresh_view(
                    model,
                    using=using,
                    concurrently=options["concurrently"],
                    trigger="command",
                )
            except RefreshError as exc:
                failures.append(model._meta.label)
                if progress:
                    self.stdout.write(" FAILED")
                self.stderr.write(f"  {model._meta.label}: FAILED: {exc}")
                continue
            assert not isinstance(log, Skipped)  # it waited for the lock and ignores marks
            mode = "concurrently" if log.concurrently else "plain"
            modes[mode] = modes.get(mode, 0) + 1
            if progress:
                self.stdout.write(f" {mode}, {time.monotonic() - clock:.3f}s")
        if options["verbosity"] >= 1:
            # Always, terminal or not: in CI logs and cron mail this line is all there is.
            self.stdout.write(self._summary(len(ordered), modes, failures, started))
        if failures:
            raise CommandError(f"Refresh failed for {', '.join(failures)}.")

    def _summary(
        self, total: int, modes: dict[str, int], failures: list[str], started: float
    ) -> str:
        if not total:
            return "No materialized views to refresh."
        done = sum(modes.values())
        how = ", ".join(f"{count} {mode}" for mode, count in sorted(modes.items()))
        line = f"Refreshed {done} of {total} materialized view{'s' if total != 1 else ''}"
        line += f" ({how})" if how else ""
        line += f" in {time.monotonic() - started:.2f}s"
        return line + (f"; {len(failures)} failed." if failures else ".")
