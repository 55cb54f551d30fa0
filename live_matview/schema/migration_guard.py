"""Let migrations alter columns that materialized views read.

PostgreSQL refuses ``ALTER TABLE ... ALTER COLUMN ... TYPE`` on a column a view reads
(SQLSTATE 0A000). While ``migrate_with_views`` runs ``migrate``, an execute wrapper runs
each ``ALTER TABLE`` in a savepoint; when it is refused, the managed views that read the
table (and the views that read those) are dropped in the same transaction, the statement
is retried, and the views are created again right away from the definitions PostgreSQL
held for them, with their indexes, still in the migration's transaction. So the views are
never missing between the migrations and the sync, which then rebuilds any whose query
changed. Should an old definition no longer build on the altered table, that view waits
for the sync. Views this library does not manage are never dropped: the original error is
raised instead. An incremental view's query view (``<table>_lmv_query``) is dropped and
created again the same way; its table, which reads nothing, stays as it is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connections, transaction

from .._compat import sqlstate
from ..models import ManagedView
from ..views.names import RelationName
from . import ddl, incremental, introspection
from .database_graph import managed_models
from .planning import legacy_view_names

logger = logging.getLogger("live_matview.migrations")

FEATURE_NOT_SUPPORTED = "0A000"
_ALTER_TABLE = re.compile(
    r'^\s*ALTER\s+TABLE\s+(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?((?:"(?:[^"]|"")*"|[\w$]+)'
    r'(?:\.(?:"(?:[^"]|"")*"|[\w$]+))?)',
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _SavedView:
    """A view as PostgreSQL holds it: enough to create it again after a column change."""

    name: str  # regclass text: quoted by PostgreSQL where needed
    definition: str
    indexes: tuple[str, ...]
    kind: str = "m"  # "v": an incremental view's query view

    @classmethod
    def read(cls, cursor: Any, oid: int, name: str, kind: str = "m") -> _SavedView:
        definition = introspection.view_definition(cursor, oid).strip().rstrip(";")
        cursor.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s ORDER BY 1",
            [oid],
        )
        return cls(name, definition, tuple(row[0] for row in cursor.fetchall()), kind)

    def create_sql(self) -> str:
        what = "VIEW" if self.kind == "v" else "MATERIALIZED VIEW"
        return f"CREATE {what} {self.name} AS {self.definition}"

    def drop_sql(self) -> str:
        return f"DROP VIEW {self.name}" if self.kind == "v" else ddl.drop_view(self.name)


class _ViewsInTheWay:
    def __init__(self, using: str) -> None:
        self.using = using
        self.dropped: list[str] = []
        self.restored: list[str] = []

    def __call__(
        self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any
    ) -> Any:
        match = _ALTER_TABLE.match(sql) if isinstance(sql, str) else None
        if match is None:
            return execute(sql, params, many, context)
        try:
            with transaction.atomic(using=self.using):
                return execute(sql, params, many, context)
        except DatabaseError as exc:
            if sqlstate(exc) != FEATURE_NOT_SUPPORTED:
                raise
            saved = self._drop_readers(match.group(1))
            if not saved:
                raise
        result = execute(sql, params, many, context)
        self._restore(saved)
        return result

    def _drop_readers(self, table: str) -> list[_SavedView]:
        """Drop the managed views reading ``table``; returns what is needed to rebuild them
        (empty when nothing could be dropped)."""
        connection = connections[self.using]
        saved: list[_SavedView] = []
        with connection.cursor() as cursor:
            oid = introspection.relation_oid(cursor, table)
            if oid is None:
                return saved
            readers = introspection.dependent_views(cursor, oid)
            if not readers:
                return saved
            ours = _managed_names(cursor, connection)
            foreign = [name for _oid, kind, name in readers if (kind, name) not in ours]
            if foreign:
                logger.error(
                    "Cannot drop %s to alter %s: not managed by live_matview.",
                    ", ".join(foreign),
                    table,
                )
                return saved
            saved = [_SavedView.read(cursor, reader, name, kind) for reader, kind, name in readers]
            for view in reversed(saved):
                cursor.execute(view.drop_sql())
                self.dropped.append(view.name)
                logger.info("Dropped %s so that %s can be altered.", view.name, table)
        return saved

    def _restore(self, saved: list[_SavedView]) -> None:
        """Create the dropped views again, readers after what they read, each in a savepoint."""
        connection = connections[self.using]
        with connection.cursor() as cursor:
            for view in saved:
                try:
                    with transaction.atomic(using=self.using):
                        cursor.execute(view.create_sql())
                        for statement in view.indexes:
                            cursor.execute(statement)
                except DatabaseError as exc:
                    logger.warning(
                        "%s does not build on the altered table (%s); the sync creates it.",
                        view.name,
                        str(exc).strip(),
                    )
                    continue
                self.restored.append(view.name)


def _managed_names(cursor: Any, connection: Any) -> set[tuple[str, str]]:
    """(relkind, ``regclass`` text) of the managed views, as ``dependent_views`` reports
    them: materialized views, and the query views of incremental views ("v")."""
    names = {model._meta.db_table for model in managed_models(connection.alias)}
    names |= set(ManagedView.objects.using(connection.alias).values_list("view_name", flat=True))
    names |= legacy_view_names(cursor)
    matviews, query_views = [], []
    for name in names:
        relation = RelationName.parse(name)
        if oid := introspection.matview_oid(cursor, relation.quoted(connection)):
            matviews.append(oid)
        elif incremental.stored_oid(cursor, connection, relation) is not None:
            query = incremental.query_view(relation).quoted(connection)
            if (query_oid := introspection.relation_oid(cursor, query)) is not None:
                query_views.append(query_oid)
    found = {("m", name) for name in introspection.relation_names(cursor, matviews).values()}
    return found | {
        ("v", name) for name in introspection.relation_names(cursor, query_views).values()
    }


@contextmanager
def views_out_of_the_way(using: str) -> Iterator[_ViewsInTheWay]:
    """While active, column changes that views block drop those views instead of failing."""
    guard = _ViewsInTheWay(using)
    with connections[using].execute_wrapper(guard):
        yield guard
