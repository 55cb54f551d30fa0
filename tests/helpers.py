"""Catalog look-ups the tests use to see what really happened in PostgreSQL."""

from __future__ import annotations

from django.db import connection

from live_matview import ddl, introspection


def view_oid(model) -> int | None:
    with connection.cursor() as cursor:
        return introspection.matview_oid(cursor, ddl.relation(model).quoted(connection))


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
