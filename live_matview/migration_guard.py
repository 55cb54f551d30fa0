"""Let migrations alter columns that materialized views read.

PostgreSQL refuses ``ALTER TABLE ... ALTER COLUMN ... TYPE`` on a column a view reads
(SQLSTATE 0A000). While ``migrate_with_views`` runs ``migrate``, an execute wrapper runs
each ``ALTER TABLE`` in a savepoint; when it is refused, the managed views that read the
table (and the views that read those) are dropped in the same transaction and the
statement is retried. The sync that follows the migrations rebuilds them. Views this
library does not manage are never dropped: the original error is raised instead.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError, connections, transaction

from . import ddl, introspection
from ._compat import sqlstate
from .dependencies import managed_models
from .models import ManagedView
from .names import RelationName
from .planning import legacy_view_names

logger = logging.getLogger("live_matview.migrations")

FEATURE_NOT_SUPPORTED = "0A000"
_ALTER_TABLE = re.compile(
    r'^\s*ALTER\s+TABLE\s+(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?((?:"(?:[^"]|"")*"|[\w$]+)'
    r'(?:\.(?:"(?:[^"]|"")*"|[\w$]+))?)',
    re.IGNORECASE,
)


class _ViewsInTheWay:
    def __init__(self, using: str) -> None:
        self.using = using
        self.dropped: list[str] = []

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
            if sqlstate(exc) != FEATURE_NOT_SUPPORTED or not self._drop_readers(match.group(1)):
                raise
        return execute(sql, params, many, context)

    def _drop_readers(self, table: str) -> bool:
        connection = connections[self.using]
        with connection.cursor() as cursor:
            oid = introspection.relation_oid(cursor, table)
            if oid is None:
                return False
            readers = introspection.dependent_views(cursor, oid)
            if not readers:
                return False
            ours = _managed_names(cursor, connection)
            foreign = [name for _oid, kind, name in readers if kind != "m" or name not in ours]
            if foreign:
                logger.error(
                    "Cannot drop %s to alter %s: not managed by live_matview.",
                    ", ".join(foreign),
                    table,
                )
                return False
            for _oid, _kind, name in reversed(readers):
                cursor.execute(ddl.drop_view(name))
                self.dropped.append(name)
                logger.info(
                    "Dropped %s so that %s can be altered; it is rebuilt next.", name, table
                )
        return True


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
