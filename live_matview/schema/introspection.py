"""Read-only questions to PostgreSQL's catalog about relations, views and indexes.

Every function takes a Django cursor and passes names as parameters (``to_regclass``
parses a driver-quoted name), never as SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..views.names import RelationName

Cursor = Any


def relation_oid(cursor: Cursor, quoted_name: str) -> int | None:
    """The oid of a relation named by a quoted identifier, ``None`` if there is none."""
    cursor.execute("SELECT to_regclass(%s)::oid", [quoted_name])
    row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def relkind(cursor: Cursor, oid: int) -> str | None:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s", [oid])
    row = cursor.fetchone()
    return None if row is None else str(row[0])


def matview_oid(cursor: Cursor, quoted_name: str) -> int | None:
    """The oid of a materialized view by quoted name; ``None`` if missing or not a matview."""
    oid = relation_oid(cursor, quoted_name)
    if oid is None or relkind(cursor, oid) != "m":
        return None
    return oid


def view_definition(cursor: Cursor, oid: int) -> str:
    """The definition as PostgreSQL normalised it, which is what changes are compared by."""
    cursor.execute("SELECT pg_get_viewdef(%s::oid)", [oid])
    return str(cursor.fetchone()[0])


def is_populated(cursor: Cursor, oid: int) -> bool:
    cursor.execute("SELECT relispopulated FROM pg_class WHERE oid = %s", [oid])
    row = cursor.fetchone()
    return bool(row and row[0])


def has_usable_unique_index(cursor: Cursor, oid: int) -> bool:
    """Whether ``REFRESH ... CONCURRENTLY`` can work: a valid unique index on plain columns
    with no WHERE clause, as PostgreSQL requires."""
    cursor.execute(
        """
        SELECT EXISTS (
            SELECT 1 FROM pg_index
            WHERE indrelid = %s AND indisunique AND indisvalid
              AND indpred IS NULL AND indexprs IS NULL
        )
        """,
        [oid],
    )
    return bool(cursor.fetchone()[0])


def index_names(cursor: Cursor, oid: int) -> set[str]:
    cursor.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s",
        [oid],
    )
    return {str(row[0]) for row in cursor.fetchall()}


def relation_dependencies(cursor: Cursor, view_oids: Iterable[int]) -> set[tuple[int, int]]:
    """``(view, relation it reads)`` pairs for the given views, from their rewrite rules."""
    oids = list(view_oids)
    if not oids:
        return set()
    cursor.execute(
        """
        SELECT DISTINCT r.ev_class::oid, d.refobjid::oid
        FROM pg_rewrite r
        JOIN pg_depend d
          ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
         AND d.refclassid = 'pg_class'::regclass
        WHERE r.ev_class = ANY(%s) AND d.refobjid <> r.ev_class
        """,
        [oids],
    )
    return {(int(view), int(ref)) for view, ref in cursor.fetchall()}


def dependent_views(cursor: Cursor, oid: int) -> list[tuple[int, str, str]]:
    """Views and materialized views that read ``oid``, directly or through each other.

    Returns ``(oid, relkind, quoted name)``, readers after what they read, so dropping
    in reverse order never hits a dependency.
    """
    cursor.execute(
        """
        WITH RECURSIVE readers(oid, depth) AS (
            SELECT r.ev_class, 1
            FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            WHERE d.classid = 'pg_rewrite'::regclass
              AND d.refclassid = 'pg_class'::regclass
              AND d.refobjid = %s AND r.ev_class <> %s
            UNION
            SELECT r.ev_class, readers.depth + 1
            FROM readers
            JOIN pg_depend d ON d.refobjid = readers.oid
             AND d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
            JOIN pg_rewrite r ON r.oid = d.objid
            WHERE r.ev_class <> readers.oid AND readers.depth < 100
        )
        SELECT c.oid, c.relkind, c.oid::regclass::text, max(readers.depth) AS depth
        FROM readers JOIN pg_class c ON c.oid = readers.oid
        GROUP BY c.oid, c.relkind
        ORDER BY depth, c.oid
        """,
        [oid, oid],
    )
    return [(int(row[0]), str(row[1]), str(row[2])) for row in cursor.fetchall()]


def relation_names(cursor: Cursor, oids: Iterable[int]) -> dict[int, str]:
    """Display names (``regclass`` text, quoted where needed) of relations."""
    oid_list = list(oids)
    if not oid_list:
        return {}
    cursor.execute("SELECT oid, oid::regclass::text FROM pg_class WHERE oid = ANY(%s)", [oid_list])
    return {int(oid): str(name) for oid, name in cursor.fetchall()}


def qualified_relation(
    cursor: Cursor, connection: Any, name: RelationName
) -> tuple[RelationName, int]:
    """The relation with its schema, as the catalog resolves it now (under this
    connection's ``search_path``), and its oid: SQL generated for a trigger or a function
    must name it so, since it runs under the writer's ``search_path``."""
    cursor.execute(
        "SELECT n.nspname, c.relname, c.oid FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        [name.quoted(connection)],
    )
    row = cursor.fetchone()
    if row is None:
        raise LookupError(f"Relation {name} does not exist.")
    return RelationName(row[1], row[0]), int(row[2])


def functions_named(cursor: Cursor, schema: str, prefix: str) -> list[tuple[str, str]]:
    """(signature, name) of the functions in ``schema`` whose name starts with ``prefix``;
    the signature is ``regprocedure`` text, quoted, ready for ``DROP FUNCTION``."""
    cursor.execute(
        "SELECT p.oid::regprocedure::text, p.proname FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s AND starts_with(p.proname, %s)",
        [schema, prefix],
    )
    return [(str(signature), str(name)) for signature, name in cursor.fetchall()]
