"""What ``migrate_with_views`` does for capture, in its transaction: keep the database's
map of source table -> view in line, and make sure each source table has the trigger."""

from __future__ import annotations

import logging
from typing import Any

from django.apps import apps
from django.db.models import Model

from .. import conf
from .._compat import sql
from ..schema.incremental_refresh import sync_refresh_functions
from ..views.declaration import ViewModel
from ..views.graph import DependencyGraph
from ..views.incremental import is_incremental
from ..views.names import RelationName, as_string
from .keys import sync_key_capture
from .source_map import build_source_map, relation_oids, table_keys
from .triggers import TRIGGER_NAME, ensure_triggers, trigger, trigger_models

logger = logging.getLogger("live_matview.capture")


def sync_capture(cursor: Any, connection: Any, graph: DependencyGraph) -> list[str]:
    """Returns a line per change made (empty when everything was in place already)."""
    changes: list[str] = []
    source_map = build_source_map(connection.alias, graph)
    tables = set().union(*source_map.direct_tables.values()) if source_map.direct_tables else set()
    oids = relation_oids(cursor, connection, tables)
    keyed = conf.capture() == "triggers"  # incremental views: key triggers mark them
    wanted = {
        (oids[table], view._meta.db_table)
        for view, view_tables in source_map.direct_tables.items()
        for table in view_tables
        if table in oids and not (keyed and is_incremental(view))
    }
    cursor.execute("SELECT relid, view_name FROM live_matview_source")
    present = {(int(relid), name) for relid, name in cursor.fetchall()}
    if wanted != present:
        cursor.execute("DELETE FROM live_matview_source")
        if wanted:
            cursor.executemany(
                "INSERT INTO live_matview_source (relid, view_name) VALUES (%s, %s)",
                sorted(wanted),
            )
        changes.append(f"source map: {len(wanted)} (table, view) pairs")
    if conf.capture() == "triggers" and apps.is_installed("pgtrigger"):
        models = _trigger_targets(tables, source_map.direct_tables)
        for label in ensure_triggers(connection.alias, models):
            changes.append(f"capture trigger installed on {label}")
        changes.extend(_drop_stale_triggers(cursor, connection, models))
    changes.extend(sync_key_capture(cursor, connection, graph.nodes if keyed else []))
    # Incremental views' refresh functions (not capture, but written in the same sync).
    changes.extend(sync_refresh_functions(cursor, connection, graph.nodes))
    return changes


def _drop_stale_triggers(cursor: Any, connection: Any, models: list[type[Model]]) -> list[str]:
    """Drop the capture triggers that no declaration needs any more: a source removed from
    ``refresh_on``, or a view switched from ``"auto"`` to a proxy model (whose trigger has
    another name). Only triggers named like ours are looked at; writes to those tables
    would otherwise keep marking views that no longer read them, or none at all."""
    wanted = {
        (key, trigger().get_pgid(model))  # type: ignore[arg-type]
        for model in models
        for key in table_keys(RelationName.parse(model._meta.db_table))
    }
    cursor.execute(
        """
        SELECT n.nspname, c.relname, t.tgname
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE t.tgname LIKE %s AND NOT t.tgisinternal
        ORDER BY 1, 2, 3
        """,
        [f"pgtrigger_{TRIGGER_NAME}_%"],
    )
    dropped = []
    for schema, table, name in cursor.fetchall():
        if (f"{schema}.{table}", name) in wanted:
            continue
        statement = sql.SQL("DROP TRIGGER {} ON {}.{}").format(
            sql.Identifier(name), sql.Identifier(schema), sql.Identifier(table)
        )
        cursor.execute(as_string(statement, connection))
        logger.info(
            "Dropped the capture trigger %s on %s.%s: no view needs it.", name, schema, table
        )
        dropped.append(f"stale capture trigger {name} dropped from {schema}.{table}")
    return dropped


def _trigger_targets(
    tables: set[RelationName], tables_by_view: dict[ViewModel, set[RelationName]]
) -> list[type[Model]]:
    """Models whose tables need the trigger: declared sources, and the models behind the
    tables that ``"auto"`` views read."""
    targets = {model._meta.db_table: model for model in trigger_models()}
    by_table = {
        RelationName.parse(model._meta.db_table): model
        for model in apps.get_models()
        if not model._meta.proxy and model._meta.managed
    }
    for view, view_tables in tables_by_view.items():
        if view.refresh_on != "auto":
            continue
        for table in view_tables:
            model = by_table.get(table) or by_table.get(RelationName(table.name))
            if model is None:
                logger.warning(
                    "%s reads %s, which no installed model owns: writes to it are not "
                    "captured by a trigger.",
                    view._meta.label,
                    table,
                )
            else:
                targets.setdefault(model._meta.db_table, model)
    return [targets[name] for name in sorted(targets)]
