"""What ``live_matview_status`` shows: each view's state, read from the catalog and the
library's own tables in a few queries (not one per view)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import Count

from .capture.source_map import source_map
from .models import DirtyMark, KeyMark, ManagedView, MaterializedViewRefreshLog
from .refresh.passes import mode_of
from .schema import ddl, incremental
from .schema.database_graph import database_graph, managed_models


@dataclass
class ViewStatus:
    view: str
    model: str
    exists: bool
    populated: bool | None
    rows: int | None  # PostgreSQL's estimate; counted when it has none yet, or with exact_rows
    rows_exact: bool
    size_bytes: int | None
    last_refresh: datetime | None
    last_duration_ms: float | None
    last_concurrently: bool | None
    last_failed: bool | None
    #: When ``migrate_with_views`` last built the view (with its data), if no refresh since.
    created_at: datetime | None
    pending_marks: int
    pending_keys: int  # an incremental view's keys waiting for a by-key refresh
    consecutive_failures: int
    next_retry: datetime | None
    refresh_mode: str
    depends_on: list[str]
    sources: list[str]

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("last_refresh", "next_retry", "created_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data


def view_statuses(using: str, *, exact_rows: bool = False) -> list[ViewStatus]:
    connection = connections[using]
    models = managed_models(using)
    graph = database_graph(using)
    sources = source_map(using).direct_tables
    marks, keys = (
        dict(
            table.objects.using(using)
            .values("view_name")
            .annotate(n=count)
            .values_list("view_name", "n")
        )
        for table, count in ((DirtyMark, Count("id")), (KeyMark, Count("key", distinct=True)))
    )
    states = {row.view_name: row for row in ManagedView.objects.using(using)}
    latest = _latest_logs(using, [model._meta.db_table for model in models])
    statuses = []
    with connection.cursor() as cursor:
        for model in graph.order(models):
            name = model._meta.db_table
            oid = incremental.view_oid(cursor, connection, model)
            populated, rows, size = (
                _relation_stats(cursor, oid) if oid is not None else (None, None, None)
            )
            # A view just created (or refreshed plainly) has no estimate until ANALYZE:
            # count it then rather than show nothing.
            count = bool(populated) and (exact_rows or rows is None)
            if count:
                cursor.execute(f"SELECT count(*) FROM {ddl.relation(model).quoted(connection)}")
                rows = int(cursor.fetchone()[0])
            state = states.get(name)
            log = latest.get(name)
            built = state.updated_at if state is not None and oid is not None else None
            statuses.append(
                ViewStatus(
                    view=name,
                    model=model._meta.label,
                    exists=oid is not None,
                    populated=populated,
                    rows=rows,
                    rows_exact=count,
                    size_bytes=size,
                    last_refresh=log.updated_at if log else None,
                    last_duration_ms=(
                        log.duration.total_seconds() * 1000 if log and log.duration else None
                    ),
                    last_concurrently=log.concurrently if log else None,
                    last_failed=log.failed if log else None,
                    created_at=built if built and (log is None or log.updated_at < built) else None,
                    pending_marks=marks.get(name, 0),
                    pending_keys=keys.get(name, 0),
                    consecutive_failures=state.consecutive_failures if state else 0,
                    next_retry=state.next_retry_at if state else None,
                    refresh_mode=mode_of(model),
                    depends_on=sorted(parent._meta.label for parent in graph.parents[model]),
                    sources=sorted(
                        table.name if table.schema in (None, "public") else str(table)
                        for table in sources.get(model, ())
                    ),
                )
            )
    return statuses


def _latest_logs(using: str, names: list[str]) -> dict[str, MaterializedViewRefreshLog]:
    logs = (
        MaterializedViewRefreshLog.objects.using(using)
        .filter(view_name__in=names)
        .order_by("view_name", "-updated_at", "-id")
        .distinct("view_name")
    )
    return {log.view_name: log for log in logs}


def _relation_stats(cursor: Any, oid: int) -> tuple[bool, int | None, int]:
    cursor.execute(
        "SELECT relispopulated, reltuples, pg_total_relation_size(oid) FROM pg_class "
        "WHERE oid = %s",
        [oid],
    )
    populated, tuples, size = cursor.fetchone()
    rows = None if tuples is None or tuples < 0 else int(tuples)
    return bool(populated), rows, int(size)
