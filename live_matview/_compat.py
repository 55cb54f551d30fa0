"""Differences between psycopg 2 and psycopg 3, decided once."""

from __future__ import annotations

from django.db.backends.postgresql.psycopg_any import is_psycopg3, sql

__all__ = ["is_psycopg3", "sql", "sqlstate"]


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, whatever the driver and however Django wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        code = getattr(current, "sqlstate", None) or getattr(current, "pgcode", None)
        if isinstance(code, str):
            return code
        current = current.__cause__ or current.__context__
    return None
