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
raised instead.
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
from . import ddl, introspection
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

    @classmethod
    def read(cls, cursor: Any, oid: int, name: str) -> _SavedView:
        definition = introspection.view_definition(cursor, oid).strip().rstrip(";")
        cursor.execute(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = %s ORDER BY 1",
            [oid],
        )
        return cls(name, definition, tuple(row[0] for row in cursor.fetchall()))

    def create_sql(self) -> str:
        return f"CREATE MATERIALIZED VIEW {self.name} AS {self.definition}"


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
            foreign = [name for _oid, kind, name in readers if kind != "m" or name not in ours]
            if foreign:
                logger.error(
                    "Cannot drop %s to alter %s: not managed by live_matview.",
                    ", ".join(foreign),
                    table,
                )
                return saved
            saved = [_SavedView.read(cursor, reader, name) for reader, _kind, name in readers]
            for _oid, _kind, name in reversed(readers):
                cursor.execute(ddl.drop_view(name))
                self.dropped.append(name)
                logger.info("Dropped %s so that %s can be altered.", name, table)
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


def _managed_names(cursor: Any, connection: Any) -> set[str]:
    """Managed views as ``regclass`` text, the form ``dependent_views`` reports names in."""
    names = {model._meta.db_table for model in managed_models(connection.alias)}
    names |= set(ManagedView.objects.using(connection.alias).values_list("view_name", flat=True))
    names |= legacy_view_names(cursor)
    oids = [
        oid
        for name in names
        if (oid := introspection.matview_oid(cursor, RelationName.parse(name).quoted(connection)))
    ]
    return set(introspection.relation_names(cursor, oids).values())


@contextmanager
def views_out_of_the_way(using: str) -> Iterator[_ViewsInTheWay]:
    """While active, column changes that views block drop those views instead of failing."""
    guard = _ViewsInTheWay(using)
    with connections[using].execute_wrapper(guard):
        yield guard
