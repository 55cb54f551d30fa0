"""Writes that commit while a sync runs: the views the sync creates or rebuilds must
still show them.

Such writes are in neither the new view's data nor, before the sync commits, the map that
tells writers whom to mark. So the sync marks each created or rebuilt view in its own
transaction and, after its commit, refreshes them once the transactions that were writing
their source tables have finished, unless no captured write committed meanwhile
(``WriteListener`` hears the capture trigger's NOTIFY).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import connections

from . import conf
from ._compat import is_psycopg3
from .capture.source_map import build_source_map
from .refresh.passes import refresh_pass, with_dependents
from .schema import introspection
from .schema.planning import CREATE, RECREATE, SyncPlan
from .views.declaration import ViewModel
from .views.graph import DependencyGraph

logger = logging.getLogger("live_matview.processor")

SYNC_MARK_SOURCE = "live_matview sync"


class WriteListener:
    """Hears whether any captured write committed in the database while a sync ran: the
    capture trigger NOTIFYs once per writing transaction, on commit. When nothing was
    written, the views the sync created hold everything and need no second refresh."""

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper
        self.heard = False

    @classmethod
    def open(cls, using: str) -> WriteListener | None:
        if conf.capture() != "triggers":
            return None  # Django-side capture sends no NOTIFY: always catch up
        wrapper = connections.create_connection(using)
        try:
            wrapper.ensure_connection()
            wrapper.set_autocommit(True)
            with wrapper.cursor() as cursor:
                cursor.execute("SELECT current_setting('live_matview.notify', true)")
                if cursor.fetchone()[0] == "off":
                    wrapper.close()
                    return None
                listener = cls(wrapper)
                if is_psycopg3:  # psycopg 2 collects them in connection.notifies instead
                    wrapper.connection.add_notify_handler(listener._on_notify)
                cursor.execute("LISTEN live_matview")
        except Exception:  # noqa: BLE001  (e.g. a pooler that cannot LISTEN: catch up always)
            wrapper.close()
            return None
        return listener

    def _on_notify(self, notify: Any) -> None:
        self.heard = True

    def heard_writes(self) -> bool:
        """A query makes the server deliver every notification committed before it."""
        with self.wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not is_psycopg3 and self.wrapper.connection.notifies:  # psycopg 2: a list
            self.heard = True
        return self.heard

    def close(self) -> None:
        self.wrapper.close()


def mark_rebuilt(
    cursor: Any, using: str, plan: SyncPlan, graph: DependencyGraph
) -> tuple[set[ViewModel], list[int]]:
    """Mark the created and recreated views that have sources (their own, or those of the
    views they read), so that they are refreshed even if this process ends right after the
    commit; returns them and the oids of those source tables."""
    rebuilt = {action.model for action in plan.of_kind(CREATE, RECREATE) if action.model}
    if not rebuilt:
        return set(), []
    source_map = build_source_map(using, graph)
    tables: dict[ViewModel, set[Any]] = {}
    for view in graph.order():
        inherited = set().union(*(tables[parent] for parent in graph.parents[view]))
        tables[view] = source_map.direct_tables.get(view, set()) | inherited
    marked = {view for view in rebuilt if tables.get(view)}
    if not marked:
        return set(), []
    cursor.executemany(
        "INSERT INTO live_matview_dirtymark (view_name, source, marked_at) VALUES (%s, %s, now())",
        [(view._meta.db_table, SYNC_MARK_SOURCE) for view in sorted(marked, key=_label)],
    )
    names = set().union(*(tables[view] for view in marked))
    oids = [
        oid
        for name in names
        if (oid := introspection.relation_oid(cursor, name.quoted(cursor.db))) is not None
    ]
    return marked, sorted(oids)


_IN_FLIGHT_WRITERS = """
    SELECT DISTINCT l.virtualtransaction, l.pid FROM pg_locks l
    WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock' AND l.granted
      AND l.relation = ANY(%s) AND l.pid <> pg_backend_pid()
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def catch_up(
    using: str, views: set[ViewModel], tables: list[int], listener: WriteListener | None
) -> None:
    """After the sync's commit: wait for the transactions that were writing the views'
    source tables meanwhile (their capture trigger used the old map, so they marked
    nothing for these views), then refresh the views, so the refresh sees their writes;
    or, when no write committed since the sync began, just drop the sync's marks."""
    with connections[using].cursor() as cursor:
        cursor.execute(_IN_FLIGHT_WRITERS, [tables])
        writers = {str(vxid): pid for vxid, pid in cursor.fetchall()}
        if writers:
            logger.warning(
                "Waiting for %d transaction(s) that wrote to the sources of %s while the "
                "sync ran (pids %s), so that the refresh after the sync includes them.",
                len(writers),
                ", ".join(sorted(_label(view) for view in views)),
                ", ".join(str(pid) for pid in sorted(set(writers.values()))),
            )
        deadline = time.monotonic() + conf.sync_lock_timeout()
        while writers:
            cursor.execute(_IN_FLIGHT_WRITERS, [tables])
            writers = {str(vxid): pid for vxid, pid in cursor.fetchall() if str(vxid) in writers}
            if writers and time.monotonic() > deadline:
                logger.error(
                    "Transactions of pids %s still write to the sources of %s after %.0f s "
                    "(LIVE_MATVIEW_SYNC_LOCK_TIMEOUT); refreshing without waiting for them, "
                    "so their writes show only after the next write to those tables.",
                    ", ".join(str(pid) for pid in sorted(set(writers.values()))),
                    ", ".join(sorted(_label(view) for view in views)),
                    conf.sync_lock_timeout(),
                )
                break
            if writers:
                time.sleep(0.05)  # no SQL waits on another session's transaction
        if listener is not None and not listener.heard_writes():
            cursor.execute(
                "DELETE FROM live_matview_dirtymark WHERE source = %s AND view_name = ANY(%s)",
                [SYNC_MARK_SOURCE, [view._meta.db_table for view in views]],
            )
            return
    refresh_pass(using, with_dependents(using, views), trigger="drain")


def _label(view: ViewModel) -> str:
    return str(view._meta.label)
