"""Catalog look-ups the tests use to see what really happened in PostgreSQL."""

from __future__ import annotations

from django.db import connection

from live_matview.schema import ddl, incremental, introspection


def view_oid(model) -> int | None:
    """The materialized view's oid (an incremental view's table)."""
    with connection.cursor() as cursor:
        return incremental.view_oid(cursor, connection, model)


def view_oids(models) -> dict:
    return {model: view_oid(model) for model in models}


def matview_definition(model) -> str:
    with connection.cursor() as cursor:
        oid = introspection.matview_oid(cursor, ddl.relation(model).quoted(connection))
        return introspection.view_definition(cursor, oid)


def fetch(sql: str, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def execute(sql: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def view_differences(model) -> tuple[int, int]:
    """Rows in the view but not in its query, and the other way round (both 0: fresh)."""
    from live_matview.views.query import view_sql

    table = ddl.relation(model).quoted(connection)
    query = view_sql(model, connection)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM (SELECT * FROM {table} EXCEPT ({query})) d")
        stale = cursor.fetchone()[0]
        cursor.execute(f"SELECT count(*) FROM (({query}) EXCEPT SELECT * FROM {table}) d")
        missing = cursor.fetchone()[0]
    return stale, missing


def assert_fresh(*models) -> None:
    for model in models:
        assert view_differences(model) == (0, 0), f"{model._meta.label} is stale"


def capture_trigger_names() -> list[tuple[str, str]]:
    """(table, trigger) of every capture trigger in the database."""
    return fetch(
        "SELECT c.oid::regclass::text, t.tgname FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname LIKE 'pgtrigger_live_matview_%%'"
    )


def database_url(dbname: str | None = None) -> str:
    """A libpq URL of the suite's database server (TCP or socket directory)."""
    from urllib.parse import quote

    db = connection.settings_dict
    dbname = dbname or db["NAME"]
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    host, port = db["HOST"] or "", db["PORT"] or "5432"
    if host.startswith("/"):
        return f"postgresql://{user}{password}@/{dbname}?host={quote(host, safe='/')}&port={port}"
    return f"postgresql://{user}{password}@{host}:{port}/{dbname}"


def raw_connection(dbname: str | None = None):
    """A plain psycopg2 connection to the suite's database: a client Django knows nothing of."""
    import psycopg2

    settings = connection.settings_dict
    return psycopg2.connect(
        dbname=dbname or settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
    )


def wait_until(condition, timeout: float = 60.0, message: str = "condition") -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds.

    The timeout only stops a test that would hang: it is far above what a loaded 2-core
    machine needs (a worker subprocess can take 10 s there just to start Django)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.02)
