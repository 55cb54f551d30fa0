"""Key capture for incremental views: which keys did a statement touch?

Every source table of an incremental view gets four statement-level triggers:
``AFTER INSERT`` (``REFERENCING NEW TABLE``), ``AFTER UPDATE`` (old and new),
``AFTER DELETE`` (old) and ``AFTER TRUNCATE``. PostgreSQL allows transition tables only
on triggers of a single event (PostgreSQL 13 to 18 alike), hence one per operation. They
call one function per table that turns the changed rows into view keys, old and new
values both (a row moved from one key to another dirties both), by following each
lookup's joins, and records them in ``live_matview_keymark`` in the writer's transaction:
durable and lost with a rollback, like the marks of section 3. A TRUNCATE, or a row whose
path breaks (a parent row already gone, say after a database-level cascade), writes a full
mark instead: the view is rebuilt.

Unlike the capture trigger, these are not pgtrigger triggers in user migrations: their
body is the view's lookups, so it changes whenever a declaration does. The sync
(``migrate_with_views``, in its one transaction) writes the functions and triggers, and
rewrites them when the lookups or the tables' schema change; writes from every client
(ORM, bulk operations, raw SQL, psql) fire them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any

from django.db.models import Model

from .. import conf
from .._compat import sql
from ..schema import introspection
from ..views.declaration import ViewModel
from ..views.incremental import KeyPath, is_incremental, key_paths
from ..views.names import RelationName, as_string

logger = logging.getLogger("live_matview.capture")

PREFIX = "live_matview_keys_"
#: (trigger name suffix, event, transition tables) per trigger on each source table.
TRIGGERS = (
    ("insert", "INSERT", ("new_rows",)),
    ("update", "UPDATE", ("old_rows", "new_rows")),
    ("delete", "DELETE", ("old_rows",)),
    ("truncate", "TRUNCATE", ()),
)
_NOTIFY = (
    "IF current_setting('live_matview.notify', true) IS DISTINCT FROM 'off' THEN\n"
    "        PERFORM pg_notify('live_matview', '');\n    END IF;"
)


def incremental_sources(views: Iterable[ViewModel]) -> dict[str, list[tuple[ViewModel, KeyPath]]]:
    """(view, path) pairs by source ``db_table``."""
    found: dict[str, list[tuple[ViewModel, KeyPath]]] = {}
    for view in views:
        if is_incremental(view):
            for path in key_paths(view):
                found.setdefault(path.source._meta.db_table, []).append((view, path))
    return found


def _qualified(cursor: Any, connection: Any, name: RelationName) -> RelationName:
    return introspection.qualified_relation(cursor, connection, name)[0]


class _Writer:
    """Composes a source table's trigger function."""

    def __init__(self, cursor: Any, connection: Any) -> None:
        self.cursor, self.connection = cursor, connection
        self.keymark = _qualified(cursor, connection, RelationName("live_matview_keymark"))
        self.dirtymark = _qualified(cursor, connection, RelationName("live_matview_dirtymark"))

    def table(self, model: type[Model]) -> Any:
        name = RelationName.parse(model._meta.db_table)
        return _qualified(self.cursor, self.connection, name).identifier()

    def keys_from(self, path: KeyPath, rows: str) -> Any:
        """``SELECT key, lost FROM rows ...``: each row's key, and whether its path breaks
        (a join finds no row where the previous hop has a value)."""
        joins, lost = [], []
        for index, hop in enumerate(path.hops, start=1):
            this, previous = sql.Identifier(f"r{index}"), sql.Identifier(f"r{index - 1}")
            to, came = sql.Identifier(hop.to_column), sql.Identifier(hop.from_column)
            joins.append(
                sql.SQL(" LEFT JOIN {} AS {} ON {}.{} = {}.{}").format(
                    self.table(hop.model), this, this, to, previous, came
                )
            )
            lost.append(
                sql.SQL("({}.{} IS NOT NULL AND {}.{} IS NULL)").format(previous, came, this, to)
            )
        head = sql.SQL("FROM {} AS r0").format(sql.Identifier(rows)) + sql.Composed(joins)
        last = sql.Identifier(f"r{len(path.hops)}")
        # JSON text: one spelling of a value whatever the session's DateStyle or TimeZone.
        return (
            sql.SQL("SELECT to_jsonb({}.{}) #>> '{{}}' AS key, {} AS lost ").format(
                last,
                sql.Identifier(path.column),
                sql.SQL(" OR ").join(lost) if lost else sql.SQL("false"),
            )
            + head
        )

    def full_mark(self, views: list[ViewModel], source: str) -> Any:
        return sql.SQL("INSERT INTO {} (view_name, source, marked_at) VALUES {};").format(
            self.dirtymark.identifier(),
            sql.SQL(", ").join(
                sql.SQL("({}, {}, now())").format(
                    sql.Literal(view._meta.db_table), sql.Literal(source)
                )
                for view in views
            ),
        )

    def operation(
        self, entries: list[tuple[ViewModel, KeyPath]], rows: tuple[str, ...], source: str
    ) -> list[Any]:
        """Per view: its keys recorded and, should a row's path break, a full mark, with
        one pass over the transition tables (one statement: the trigger runs after every
        write, and its statements were most of an incremental save's cost)."""
        statements = []
        for view, path in entries:
            union = sql.SQL(" UNION ALL ").join(self.keys_from(path, name) for name in rows)
            statements.append(
                sql.SQL(
                    "WITH changed AS ({}), recorded AS (INSERT INTO {} (view_name, key, "
                    "marked_at) SELECT DISTINCT {}, key, now() FROM changed "
                    "WHERE key IS NOT NULL) "
                    "SELECT coalesce(bool_or(lost), false) FROM changed INTO lmv_lost;"
                ).format(union, self.keymark.identifier(), sql.Literal(view._meta.db_table))
            )
            statements.append(
                sql.SQL("IF lmv_lost THEN {} END IF;").format(self.full_mark([view], source))
            )
        return statements

    def body(self, source: str, entries: list[tuple[ViewModel, KeyPath]]) -> str:
        views = sorted({view for view, _path in entries}, key=lambda v: v._meta.db_table)
        branches = []
        for _suffix, event, rows in TRIGGERS:
            statements = (
                [self.full_mark(views, source)]
                if event == "TRUNCATE"
                else self.operation(entries, rows, source)
            )
            text = "\n        ".join(as_string(s, self.connection) for s in statements)
            branches.append(f"IF TG_OP = '{event}' THEN\n        {text}\n    END IF;")
        return (
            "\nDECLARE\n    lmv_lost boolean;\nBEGIN\n    "
            + "\n    ".join([*branches, _NOTIFY])
            + "\n    RETURN NULL;\nEND\n"
        )


def function_name(table: RelationName) -> RelationName:
    digest = hashlib.md5(str(table).encode(), usedforsecurity=False).hexdigest()[:12]
    return RelationName(f"{PREFIX}{digest}", conf.schema())


def sync_key_capture(cursor: Any, connection: Any, views: Iterable[ViewModel]) -> list[str]:
    """Install, rewrite and drop key triggers so that they match the incremental views;
    returns a line per change."""
    changes: list[str] = []
    wanted = incremental_sources(views)
    writer = _Writer(cursor, connection) if wanted else None
    kept_functions: set[str] = set()
    kept_tables: set[int] = set()
    for db_table in sorted(wanted):
        assert writer is not None
        table = _qualified(cursor, connection, RelationName.parse(db_table))
        function = function_name(table)
        body = writer.body(db_table, wanted[db_table])
        if "$lmv$" in body:
            raise ValueError(f"A view or table name near {db_table} contains '$lmv$'.")
        quoted_function = function.quoted(connection)
        kept_functions.add(function.name)
        cursor.execute(
            "SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure(%s)", [quoted_function + "()"]
        )
        row = cursor.fetchone()
        if row is None or row[0] != body:
            cursor.execute(
                f"CREATE OR REPLACE FUNCTION {quoted_function}() RETURNS trigger "
                f"LANGUAGE plpgsql AS $lmv${body}$lmv$"
            )
            changes.append(f"key capture function for {db_table} written")
        cursor.execute("SELECT to_regclass(%s)::oid", [table.quoted(connection)])
        table_oid = int(cursor.fetchone()[0])
        kept_tables.add(table_oid)
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s AND tgname LIKE %s "
            "AND tgfoid = to_regprocedure(%s) AND tgenabled <> 'D'",
            [table_oid, PREFIX + "%", quoted_function + "()"],
        )
        present = {row[0] for row in cursor.fetchall()}
        for suffix, event, rows in TRIGGERS:
            name = PREFIX + suffix
            if name in present:
                continue
            referencing = ""
            if rows:
                parts = [f"{'OLD' if r == 'old_rows' else 'NEW'} TABLE AS {r}" for r in rows]
                referencing = "REFERENCING " + " ".join(parts)
            quoted_table = table.quoted(connection)
            cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {quoted_table}")
            cursor.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {quoted_table} {referencing} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {quoted_function}()"
            )
            changes.append(f"key capture trigger {suffix} installed on {db_table}")
    changes.extend(_drop_stale(cursor, connection, kept_tables, kept_functions))
    return changes


def _drop_stale(
    cursor: Any, connection: Any, kept_tables: set[int], kept_functions: set[str]
) -> list[str]:
    changes = []
    cursor.execute(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
        "WHERE tgname LIKE %s AND NOT (tgrelid = ANY(%s))",
        [PREFIX + "%", list(kept_tables) or [0]],
    )
    for table, name in cursor.fetchall():
        identifier = as_string(sql.Identifier(name), connection)
        cursor.execute(f"DROP TRIGGER {identifier} ON {table}")  # regclass text is quoted
        changes.append(f"key capture trigger {name} dropped from {table}")
    for signature, name in introspection.functions_named(cursor, conf.schema(), PREFIX):
        if name not in kept_functions:
            cursor.execute(f"DROP FUNCTION {signature}")  # regprocedure text is quoted
            changes.append(f"key capture function {name} dropped")
    return changes
