"""The refresh of an incremental view as one server-side function, written by the sync.

A by-key refresh runs after every autocommit write in ``on_commit`` mode, so the writer
waits for it. Sent statement by statement it took about 14 round trips (BEGIN, the lock,
catalog look-ups, a savepoint, the marks, the recompute, the log row, the state row,
COMMIT), each re-planned, and a second synchronous WAL flush: together ~19x the write
itself, while the recompute runs in under a millisecond. This function does the same
steps in one call, with the plans PL/pgSQL keeps for its static statements (generic
ones, see ``GENERIC_PLAN_KEYS``):

1. the view's advisory lock (the key ``refresh/full.py`` takes too);
2. ``DELETE ... RETURNING`` of the key marks, and whether a full mark is pending, in one
   statement; under READ COMMITTED every statement of a volatile function takes a new
   snapshot, so this one sees every refresh that held the lock as committed;
3. by key: the rows of those keys recomputed from the query view and replaced (gone keys
   deleted, the rest upserted, unchanged rows left alone), one statement per key (or one
   for all, past ``GENERIC_PLAN_KEYS``), each later than step 2, so its snapshot sees
   every write whose mark was taken; or a full rebuild (DELETE and INSERT) after a full
   mark or above ``share`` of the view's rows;
4. dirty marks for the views built on this one, if a row changed;
5. the log row and the view's state row.

When the call is its own transaction (autocommit) it commits with ``synchronous_commit =
off``: the writer does not wait for a second WAL flush. That is safe here: a crash can
only lose the refresh together with the deletion of its marks (one transaction), so the
view is as it was with its marks still pending, and is refreshed again. Readers see the
refreshed rows as soon as the call returns either way.

A failure raises: the transaction rolls back with the marks in place, and the caller
logs it and retries (``refresh/by_key.py``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from typing import Any

from .. import conf
from .._compat import sql
from ..views.declaration import ViewModel
from ..views.incremental import is_incremental
from ..views.names import RelationName, as_string
from . import introspection
from .incremental import by_key_composed, query_view, table, table_shape

PREFIX = "live_matview_refresh_"
#: Arguments, in order; ``refresh/by_key.py`` passes them positionally.
ARGUMENTS = (
    "lmv_wait boolean, lmv_only_if_marked boolean, lmv_share double precision, "
    "lmv_min_keys integer, lmv_namespace integer, lmv_children text[], lmv_database text, "
    "lmv_trigger text, lmv_own_transaction boolean"
)
#: What the function returns: one row.
RESULT = (
    "lmv_outcome text, lmv_kind text, lmv_reason text, lmv_keys integer, lmv_log_id bigint, "
    "lmv_started_at timestamptz, lmv_updated_at timestamptz, lmv_state_found boolean"
)
#: The function runs with ``plan_cache_mode = force_generic_plan``: PostgreSQL would
#: otherwise re-plan the recompute at every call (a plan for one key looks far cheaper
#: than the generic one, so its plan cache never settles), which took longer than running
#: it. Up to this many keys, each key is recomputed by its own run of one generic plan
#: for a single key value: index look-ups, a cost that follows the key's rows. A generic
#: plan for ``= ANY($1)`` guesses ten keys, and at 100k source rows it chose a scan of
#: the whole table (60 ms for one key instead of 0.2 ms); so did the planner with the
#: actual ten keys, its cost model expecting a disk read per index probe. Above this
#: many keys the recompute is one statement planned for its actual keys (``EXECUTE``).
GENERIC_PLAN_KEYS = 100
#: Settings the function runs with (``pg_proc.proconfig``).
CONFIG = ["plan_cache_mode=force_generic_plan"]
FULL_MARK_REASON = "a change not traced to keys (TRUNCATE, or a write without key capture)"

# Variables are prefixed ``lmv_`` so that they cannot be mistaken for the view's columns.
_BODY = """
DECLARE
    lmv_started timestamptz := clock_timestamp();
    lmv_ended timestamptz;
    lmv_taken text[];
    lmv_key text;
    lmv_step bigint;
    lmv_full boolean;
    lmv_count integer;
    lmv_rows double precision;
    lmv_changed bigint := 1;
    lmv_kind_ text := 'by_key';
    lmv_reason_ text;
    lmv_log bigint;
    lmv_found boolean;
BEGIN
    IF lmv_own_transaction THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    IF lmv_wait THEN
        PERFORM pg_advisory_xact_lock(lmv_namespace, hashtext({lock_name}));
    ELSIF NOT pg_try_advisory_xact_lock(lmv_namespace, hashtext({lock_name})) THEN
        RETURN QUERY SELECT 'busy'::text, NULL::text, NULL::text, NULL::integer,
            NULL::bigint, NULL::timestamptz, NULL::timestamptz, NULL::boolean;
        RETURN;
    END IF;
    WITH taken AS (DELETE FROM {keymark} WHERE view_name = {name} RETURNING key)
    SELECT (SELECT array_agg(DISTINCT taken.key) FROM taken),
           EXISTS (SELECT 1 FROM {dirtymark} WHERE view_name = {name})
    INTO lmv_taken, lmv_full;
    lmv_count := coalesce(cardinality(lmv_taken), 0);
    IF lmv_only_if_marked AND lmv_count = 0 AND NOT lmv_full THEN
        RETURN QUERY SELECT 'clean'::text, NULL::text, NULL::text, NULL::integer,
            NULL::bigint, NULL::timestamptz, NULL::timestamptz, NULL::boolean;
        RETURN;
    END IF;
    SELECT coalesce(c.reltuples, -1) INTO lmv_rows FROM pg_class c WHERE c.oid = {oid};
    IF lmv_full THEN
        lmv_kind_ := 'full';
        lmv_reason_ := {full_reason};
    ELSIF lmv_rows >= 0 AND lmv_count > lmv_min_keys AND lmv_count > lmv_share * lmv_rows THEN
        lmv_kind_ := 'full';
        lmv_reason_ := format('%s keys, over %s%% of the view''s ~%s rows',
            lmv_count, round(lmv_share * 100), round(lmv_rows));
    ELSE
        lmv_reason_ := lmv_count || CASE WHEN lmv_count = 1 THEN ' key' ELSE ' keys' END
            || ' changed';
    END IF;
    IF lmv_kind_ = 'full' THEN
        DELETE FROM {dirtymark} WHERE view_name = {name};
        DELETE FROM {table};
        INSERT INTO {table} SELECT * FROM {query};
    ELSIF lmv_count > 0 AND lmv_count <= {generic_keys} THEN
        lmv_changed := 0;
        FOREACH lmv_key IN ARRAY lmv_taken LOOP
            {by_key} INTO lmv_step;
            lmv_changed := lmv_changed + lmv_step;
        END LOOP;
    ELSIF lmv_count > 0 THEN
        EXECUTE {by_key_planned} INTO lmv_changed USING lmv_taken;
    ELSE
        lmv_changed := 0;
    END IF;
    IF lmv_changed > 0 AND cardinality(lmv_children) > 0 THEN
        INSERT INTO {dirtymark} (view_name, source, marked_at)
        SELECT child, {name}, now() FROM unnest(lmv_children) AS child;
    END IF;
    lmv_ended := clock_timestamp();
    INSERT INTO {log} ("view_name", "database", "started_at", "updated_at", "duration",
        "failed", "concurrently", "reason", "trigger", "error", "kind", "keys")
    VALUES ({name}, lmv_database, lmv_started, lmv_ended, lmv_ended - lmv_started, false,
        NULL, lmv_reason_, lmv_trigger, '', lmv_kind_,
        CASE WHEN lmv_kind_ = 'by_key' THEN lmv_count END)
    RETURNING id INTO lmv_log;
    UPDATE {state} SET consecutive_failures = 0, next_retry_at = NULL, last_error = '',
        last_refreshed_at = lmv_ended
    WHERE view_name = {name};
    lmv_found := FOUND;
    RETURN QUERY SELECT 'done'::text, lmv_kind_, lmv_reason_, lmv_count, lmv_log,
        lmv_started, lmv_ended, lmv_found;
END
"""


def function_name(model: ViewModel) -> RelationName:
    """Named after ``db_table`` as declared, so a refresh needs no catalog look-up."""
    return _function_name(model._meta.db_table, conf.schema())


@functools.lru_cache(maxsize=256)
def _function_name(db_table: str, schema: str) -> RelationName:
    digest = hashlib.md5(db_table.encode(), usedforsecurity=False).hexdigest()[:12]
    return RelationName(f"{PREFIX}{digest}", schema)


def function_body(cursor: Any, connection: Any, model: ViewModel) -> str:
    """The function's PL/pgSQL body for ``model``, from the catalog as it is now."""
    stored, oid = introspection.qualified_relation(cursor, connection, table(model))
    query, _query_oid = introspection.qualified_relation(
        cursor, connection, query_view(table(model))
    )
    columns, key_type, _rows = table_shape(cursor, oid, model._meta.pk.column)
    by_key = by_key_composed(
        model, stored, query, columns, sql.SQL("lmv_key::{}").format(sql.SQL(key_type)), one=True
    )
    planned = by_key_composed(
        model, stored, query, columns, sql.SQL("$1::{}[]").format(sql.SQL(key_type))
    )

    def library_table(name: str) -> Any:
        return introspection.qualified_relation(cursor, connection, RelationName(name))[
            0
        ].identifier()

    parts = {
        "name": sql.Literal(model._meta.db_table),
        "lock_name": sql.Literal(table(model).quoted(connection)),
        "keymark": library_table("live_matview_keymark"),
        "dirtymark": library_table("live_matview_dirtymark"),
        "log": library_table("live_matview_materializedviewrefreshlog"),
        "state": library_table("live_matview_managedview"),
        "oid": sql.SQL("{}::oid").format(sql.Literal(oid)),
        "full_reason": sql.Literal(FULL_MARK_REASON),
        "table": stored.identifier(),
        "query": query.identifier(),
        "by_key": by_key,
        "by_key_planned": sql.Literal(as_string(planned, connection)),
        "generic_keys": sql.Literal(GENERIC_PLAN_KEYS),
    }
    return as_string(sql.SQL(_BODY).format(**parts), connection)


def sync_refresh_functions(cursor: Any, connection: Any, views: Iterable[ViewModel]) -> list[str]:
    """Write, rewrite and drop the refresh functions so that each incremental view whose
    table exists has its own; returns a line per change."""
    changes: list[str] = []
    kept: set[str] = set()
    for model in sorted((v for v in views if is_incremental(v)), key=lambda v: v._meta.db_table):
        try:
            body = function_body(cursor, connection, model)
        except LookupError:
            continue  # not created (yet): its refresh reports that
        if "$lmv$" in body:
            raise ValueError(f"A name of {model._meta.label} contains '$lmv$'.")
        function = function_name(model)
        kept.add(function.name)
        quoted = function.quoted(connection)
        cursor.execute(
            "SELECT p.oid::regprocedure::text, p.prosrc, pg_get_function_arguments(p.oid), "
            "p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = %s AND p.proname = %s",
            [function.schema, function.name],
        )
        present = cursor.fetchall()
        if [tuple(row[1:]) for row in present] == [(body, ARGUMENTS, CONFIG)]:
            continue
        for signature, *_rest in present:
            cursor.execute(f"DROP FUNCTION {signature}")  # regprocedure text is quoted
        cursor.execute(
            f"CREATE FUNCTION {quoted}({ARGUMENTS}) RETURNS TABLE ({RESULT}) "
            "LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan "
            f"AS $lmv${body}$lmv$"
        )
        changes.append(f"refresh function for {model._meta.db_table} written")
    for signature, name in introspection.functions_named(cursor, conf.schema(), PREFIX):
        if name not in kept:
            cursor.execute(f"DROP FUNCTION {signature}")
            changes.append(f"refresh function {name} dropped")
    return changes
