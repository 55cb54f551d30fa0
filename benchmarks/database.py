"""Which PostgreSQL to use, the benchmark's own database on it, and the orchestrator's
connection to that database.

The server is ``DATABASE_URL`` when set, else the embedded server of ``<repo>/.pgdata``
(started if needed, stopped at exit by whoever started it). The database named in the
URL is only used to create and drop ``--db-name``: the benchmark never writes into a
database it did not create, so a test database on the same server is never touched.

The orchestrator talks to PostgreSQL through Django configured with no apps at all (so
whichever driver is installed works, and nothing of live_matview runs in it).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

BENCH_ALIAS = "bench"


def server_settings(root: Path) -> tuple[dict[str, Any], str]:
    """A ``DATABASES`` entry for the maintenance database, and where it came from."""
    from live_matview.embedded import database_settings, parse_database_url

    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return parse_database_url(url), "DATABASE_URL"
    return database_settings(root / ".pgdata"), f"embedded PostgreSQL in {root / '.pgdata'}"


def configure_django(maintenance: dict[str, Any], name: str) -> dict[str, Any]:
    """Set up Django in this process; returns the benchmark database's settings."""
    import django
    from django.conf import settings

    bench = {**maintenance, "NAME": name}
    settings.configure(
        DATABASES={"default": maintenance, BENCH_ALIAS: bench},
        INSTALLED_APPS=[],
        USE_TZ=True,
        DEBUG=False,
    )
    django.setup()
    return bench


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def recreate_database(name: str, attempts: int = 20) -> None:
    """Drop ``name`` if a previous run left it, and create it empty.

    CREATE DATABASE copies template1 and fails while anyone else (a test run creating its
    own database) is connected to it, so it is retried for a while.
    """
    from django.db import DatabaseError, connections

    drop_database(name)
    for attempt in range(attempts):
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {_quoted(name)}")
            return
        except DatabaseError as exc:
            if "being accessed by other users" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.5)


def drop_database(name: str) -> None:
    from django.db import connections

    connections[BENCH_ALIAS].close()
    with connections["default"].cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        force = " WITH (FORCE)" if int(cursor.fetchone()[0]) >= 130000 else ""
        cursor.execute(f"DROP DATABASE IF EXISTS {_quoted(name)}{force}")


class Admin:
    """The orchestrator's autocommit connection to the benchmark database: resets data
    between runs, switches triggers, vacuums. Never part of a timed section."""

    def __init__(self, alias: str = BENCH_ALIAS) -> None:
        from django.db import connections

        self.connection = connections[alias]

    def execute(self, sql: str, params: Any = None) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)

    def rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def scalar(self, sql: str, params: Any = None) -> Any:
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        self.connection.close()
