"""System checks about what writes a view will see: sources loaded late (W002), and tables
a SQL-file view reads, as PostgreSQL records it, that its ``refresh_on`` misses (W003).

W003 needs the database, so it is tagged ``database``: Django runs it in ``migrate`` (and
``migrate_with_views``) and in ``check --database <alias>``, never in plain ``check``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import DatabaseError, connections

from ..schema import introspection
from ..schema.database_graph import existing_views, managed_models
from ..views.declaration import ViewModel
from ..views.names import RelationName
from ..views.query import get_queryset
from ..views.registry import resolve_model
from . import source_map as source_maps
from .triggers import loaded_late


@register(Tags.models)
def check_late_sources(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list[Any]:
    warnings: list[CheckMessage] = []
    for view_label, entry in sorted(loaded_late):
        source = resolve_model(entry)
        if source is None:
            continue  # names no model at all: E002 says so
        warnings.append(
            Warning(
                f"{view_label}.refresh_on names {entry!r}, which was not loaded when the apps "
                "were ready: its capture trigger is registered only once that module is "
                "imported, so makemigrations may not write it.",
                hint=f"Import {source.__module__} from the models module of the "
                f"{source._meta.app_label!r} app, so the model loads with its app.",
                id="live_matview.W002",
            )
        )
    return warnings


@register(Tags.database)
def check_recorded_sources(
    app_configs: Iterable[Any] | None = None,
    databases: Iterable[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    warnings: list[CheckMessage] = []
    for alias in databases or ():
        try:
            warnings.extend(_uncovered_tables(alias))
        except DatabaseError:
            continue  # not migrated yet, or unreachable: nothing is recorded to compare
    return warnings


def _uncovered_tables(alias: str) -> list[CheckMessage]:
    """Tables an existing SQL-file view reads whose writes would not make it stale."""
    views = [view for view in managed_models(alias) if _needs_recorded_check(view)]
    if not views:
        return []
    connection = connections[alias]
    with connection.cursor() as cursor:
        if introspection.relation_oid(cursor, "live_matview_source") is None:
            return []
        oids = existing_views(cursor, connection, views)
        recorded = {view: source_maps.recorded_tables(cursor, oid) for view, oid in oids.items()}
    sources = source_maps.source_map(alias)
    owners = {
        key: model._meta.label
        for model in apps.get_models(include_auto_created=True)
        if not model._meta.proxy
        for key in source_maps.table_keys(RelationName.parse(model._meta.db_table))
    }
    warnings: list[CheckMessage] = []
    for view, tables in recorded.items():
        for table in sorted(tables, key=str):
            keys = source_maps.table_keys(table)
            if view in sources.views_for(keys):
                continue
            owner = next((owners[key] for key in keys if key in owners), None)
            read = f"{table} ({owner})" if owner else str(table)
            add = f'"{owner}"' if owner else f"a model of {table}"
            warnings.append(
                Warning(
                    f"{view._meta.label} reads {read}, as PostgreSQL records the view in "
                    f"database {alias!r}, which is not among its sources: writes there will "
                    "not refresh it.",
                    hint=f'Add {add} to {view._meta.label}.refresh_on, or use refresh_on = "auto".',
                    obj=view,
                    id="live_matview.W003",
                )
            )
    return warnings


def _needs_recorded_check(view: ViewModel) -> bool:
    """SQL-file views that list their sources (W001 checks QuerySet views without a
    database; ``"auto"`` follows the database; no sources means refreshed by hand)."""
    if view.refresh_on == "auto" or not view.refresh_on:
        return False
    try:
        return get_queryset(view) is None
    except Exception:  # noqa: BLE001  (a broken query is reported by E005/E006)
        return False
