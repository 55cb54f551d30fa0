"""A view's table name as SQL: parsed once from ``Meta.db_table`` and quoted by the driver.

Django treats a ``db_table`` that starts and ends with a double quote as SQL that is
already quoted (that is how a schema is named: ``'"reporting"."totals"'``); any other
value is one identifier. We follow the same rule, so that the ORM and our DDL agree on
which relation a model means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db.backends.utils import names_digest

from .._compat import sql

_QUOTED_PART = re.compile(r'"((?:[^"]|"")*)"')
MAX_IDENTIFIER_LENGTH = 63


@dataclass(frozen=True)
class RelationName:
    """A possibly schema-qualified relation name, kept as unquoted parts."""

    name: str
    schema: str | None = None

    @classmethod
    def parse(cls, db_table: str) -> RelationName:
        if len(db_table) >= 2 and db_table.startswith('"') and db_table.endswith('"'):
            parts, pos = [], 0
            while pos < len(db_table):
                match = _QUOTED_PART.match(db_table, pos)
                if match is None:
                    raise ValueError(f"Cannot parse quoted table name {db_table!r}.")
                parts.append(match.group(1).replace('""', '"'))
                pos = match.end()
                if pos < len(db_table):
                    if db_table[pos] != ".":
                        raise ValueError(f"Cannot parse quoted table name {db_table!r}.")
                    pos += 1
            if len(parts) == 1:
                return cls(parts[0])
            if len(parts) == 2:
                return cls(parts[1], parts[0])
            raise ValueError(f"Table name {db_table!r} has more than a schema and a name.")
        return cls(db_table)

    def identifier(self) -> Any:
        """A driver ``sql.Identifier`` for composing statements."""
        if self.schema is None:
            return sql.Identifier(self.name)
        return sql.Identifier(self.schema, self.name)

    def quoted(self, connection: Any) -> str:
        """The name quoted by the driver, for use in SQL text or as a ``regclass`` literal."""
        return as_string(self.identifier(), connection)

    def __str__(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


def as_string(composable: Any, connection: Any) -> str:
    """Render a driver ``sql`` composable with the connection's own quoting rules."""
    connection.ensure_connection()
    return str(composable.as_string(connection.connection))


def derived_name(table: str, suffix: str) -> str:
    """``<table>_<suffix>``, shortened with a digest when PostgreSQL would truncate it."""
    name = f"{table}_{suffix}"
    if len(name) <= MAX_IDENTIFIER_LENGTH:
        return name
    digest = names_digest(table, suffix, length=8)
    keep = MAX_IDENTIFIER_LENGTH - len(suffix) - len(digest) - 2
    return f"{table[:keep]}_{digest}_{suffix}"
