"""A table of every materialized view: freshness, size, pending work, failures."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from ...status import ViewStatus, view_statuses


class Command(BaseCommand):
    help = "Shows each materialized view's state (use --json for machines)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument("--json", action="store_true", help="One JSON object per view.")
        parser.add_argument(
            "--exact", action="store_true", help="Count rows (a scan) instead of estimating."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        statuses = view_statuses(options["database"], exact_rows=options["exact"])
        if options["json"]:
            self.stdout.write(json.dumps([s.as_json() for s in statuses], indent=2))
            return
        header = (
            "view",
            "rows",
            "size",
            "populated",
            "last refresh",
            "took",
            "mode",
            "pending",
            "failures",
            "next retry",
            "reads",
        )
        rows = [header] + [self._row(status) for status in statuses]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for index, row in enumerate(rows):
            line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            self.stdout.write(line.rstrip(), self.style.MIGRATE_HEADING if index == 0 else None)
        if not statuses:
            self.stdout.write("No materialized view models.")

    def _row(self, status: ViewStatus) -> tuple[str, ...]:
        if not status.exists:
            missing = "missing: run migrate_with_views"
            return (status.view, "", "", missing, "", "", "", "", "", "", "")
        last = "never"
        took = "" if status.last_duration_ms is None else f"{status.last_duration_ms:.0f} ms"
        how = ""
        if status.created_at is not None:  # built by migrate_with_views, not refreshed since
            last, took = f"created with data {_ago(status.created_at)}", ""
        elif status.last_refresh is not None:
            last = _ago(status.last_refresh) + (" FAILED" if status.last_failed else "")
            if status.last_concurrently is not None:
                how = "concurrently" if status.last_concurrently else "plain"
        return (
            status.view,
            "?" if status.rows is None else f"{'' if status.rows_exact else '~'}{status.rows}",
            _size(status.size_bytes or 0),
            "yes" if status.populated else "no",
            last,
            took,
            f"{status.refresh_mode}/{how}" if how else status.refresh_mode,
            _pending(status),
            str(status.consecutive_failures),
            _ago(status.next_retry, future=True) if status.next_retry else "",
            ", ".join(status.depends_on + status.sources),
        )


def _pending(status: ViewStatus) -> str:
    """Marks, and for an incremental view the keys waiting for a by-key refresh."""
    if not status.pending_keys:
        return str(status.pending_marks)
    return f"{status.pending_marks} + {status.pending_keys} keys"


def _ago(moment: Any, *, future: bool = False) -> str:
    seconds = abs((timezone.now() - moment).total_seconds())
    text = (
        f"{seconds:.0f}s"
        if seconds < 120
        else f"{seconds / 60:.0f}m"
        if seconds < 7200
        else f"{seconds / 3600:.0f}h"
    )
    return f"in {text}" if future else f"{text} ago"


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover
