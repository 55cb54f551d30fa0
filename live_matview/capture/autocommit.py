"""An autocommit write whose marks come from Python (signals mode): marks and write commit
together, in one round trip when the driver allows it.

The marks go in front of the write in the same string: the simple-query protocol runs it as
one implicit transaction, so one round trip and one commit, and the two commit or fail
together. The marks are a call of ``live_matview_signal_mark()`` (migration 0007). Should
it fail, the server stops before the write, and the error's context names the function:
the write then runs alone, once, as it would without the library (logged). What the caller
reads is the write's result: psycopg 2 keeps only the last result; psycopg 3 stands on the
first, so we read the marks from it and move on (``_compat.read_first_result``).

Where one string cannot carry both (``executemany``, dict parameters, psycopg 3's
``server_side_binding``, the function not migrated yet), they run as before: BEGIN, the
marks, the write, COMMIT.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from django.db import transaction

from .. import conf
from .._compat import (
    is_psycopg3,
    read_first_result,
    runs_statement_strings,
    sql,
    sqlstate,
    take_notices,
)
from .marks import changed_nothing, delete_marks, insert_marks, mark_rows
from .source_map import SourceMap, source_map

logger = logging.getLogger("live_matview.capture")

FUNCTION = "live_matview_signal_mark"
_UNDEFINED_FUNCTION = "42883"
_IDS = re.compile(rf"{FUNCTION} ids \{{([0-9,]*)\}}")

#: The composed call per (alias, schema, source, views, report): a save sends the same one.
_calls: dict[tuple[Any, ...], str] = {}
#: Per alias, the source map under which the function was found missing: the atomic path
#: until the map is read again (after LIVE_MATVIEW_CACHE_SECONDS, or a sync).
_missing: dict[str, SourceMap] = {}


class _MarksFailed(Exception):
    """Marking failed before the write ran: the write runs on its own."""


class _FunctionMissing(Exception):
    """``live_matview_signal_mark()`` does not exist (migration 0007 not applied): the
    string failed at its first statement, so the write has not run."""


def write_with_marks(
    execute: Any, sql_text: str, params: Any, many: bool, context: dict[str, Any], tables: list[str]
) -> tuple[Any, bool]:
    """Run an autocommit write and the marks of ``tables`` in one transaction; return the
    write's result and whether it changed anything. An error of the write reaches the
    caller as it is, its marks rolled back with it; the write never runs twice."""
    connection = context["connection"]
    cursor = context.get("cursor")
    raw = getattr(cursor, "cursor", None)
    sources = source_map(connection.alias)
    if (
        not many
        and not isinstance(params, Mapping)
        and raw is not None
        and runs_statement_strings(raw)
        and _missing.get(connection.alias) is not sources
    ):
        try:
            return _in_one_string(execute, sql_text, params, context, tables)
        except _FunctionMissing:
            _missing[connection.alias] = sources
            logger.warning(
                "live_matview: %s() is missing in database %r; run migrate. Until then "
                "each write in signals mode takes four round trips instead of one.",
                FUNCTION,
                connection.alias,
            )
    return _in_atomic(execute, sql_text, params, many, context, tables)


def _in_one_string(
    execute: Any, sql_text: str, params: Any, context: dict[str, Any], tables: list[str]
) -> tuple[Any, bool]:
    connection = context["connection"]
    cursor = context["cursor"]
    rows = mark_rows(connection, tables)
    if rows is None:  # no reader any more: nothing to mark
        result = execute(sql_text, params, False, context)
        return result, not changed_nothing(cursor, sql_text, False)
    # psycopg 2 sees no result but the last: the ids come as a notice, when needed.
    report = not is_psycopg3 and _may_change_nothing(sql_text)
    call = _call(connection, *rows, report)
    if params is not None:  # the driver will read %s placeholders, and %% as %
        call = call.replace("%", "%%")
    try:
        result = execute(f"{call};\n{sql_text}", params, False, context)
    except Exception as exc:
        if not _raised_by_marks(exc):
            raise  # the write's own error, as it is; its marks rolled back with it
        if sqlstate(exc) == _UNDEFINED_FUNCTION:
            raise _FunctionMissing from exc
        logger.exception("live_matview could not record a write; views may stay stale.")
        result = execute(sql_text, params, False, context)  # it has not run yet
        return result, not changed_nothing(cursor, sql_text, False)
    try:
        ids = _marked_ids(connection, cursor.cursor)
    except Exception:  # noqa: BLE001  (the write has committed: never break it)
        logger.exception("live_matview could not read its marks; views may stay stale.")
        ids = []
    changed = not changed_nothing(cursor, sql_text, False)
    if not changed:  # rare: an UPDATE or DELETE that matched nothing
        try:
            delete_marks(connection, ids)
        except Exception:  # noqa: BLE001  (the write has committed: never break it)
            logger.exception("live_matview could not take back the marks of an empty write.")
    return result, changed


def _raised_by_marks(exc: BaseException) -> bool:
    """Whether the error came from the marks, not the write: PL/pgSQL names the function in
    the context of every error raised inside it, and a missing function names itself."""
    current: BaseException | None = exc
    while current is not None:
        diag = getattr(current, "diag", None)
        if diag is not None:
            where = f"{diag.context or ''}\n{diag.message_primary or ''}"
            return f"{FUNCTION}(" in where
        current = current.__cause__
    return False


def _marked_ids(connection: Any, raw_cursor: Any) -> list[int]:
    """The ids ``live_matview_signal_mark()`` returned: its result on psycopg 3 (the cursor
    then moves on to the write's), its notice on psycopg 2 (none unless ``p_report``; none
    either where ``client_min_messages`` hides notices: then the marks of a write that
    changed nothing stay, a refresh too many, never one too few)."""
    readable, ids = read_first_result(raw_cursor)
    if readable:
        return list(ids or ())
    for notice in take_notices(connection.connection, FUNCTION):
        found = _IDS.search(notice)
        if found:
            return [int(n) for n in found.group(1).split(",") if n]
    return []


def _may_change_nothing(sql_text: str) -> bool:
    """Whether the statement may change no row: all but an INSERT of VALUES without
    ON CONFLICT (which inserts its rows or fails)."""
    upper = sql_text.upper()
    return not (
        upper.lstrip().startswith("INSERT") and "ON CONFLICT" not in upper and "SELECT" not in upper
    )


def _call(connection: Any, source: str, views: list[str], report: bool) -> str:
    key = (connection.alias, conf.schema(), source, tuple(views), report)
    call = _calls.get(key)
    if call is None:
        call = (
            sql.SQL("SELECT {}.{}({}, {}::text[], {})")
            .format(
                sql.Identifier(conf.schema()),
                sql.Identifier(FUNCTION),
                sql.Literal(source),
                sql.Literal(views),
                sql.Literal(report),
            )
            .as_string(connection.connection)
        )
        if len(_calls) > 512:
            _calls.clear()
        _calls[key] = call
    return call


def _in_atomic(
    execute: Any,
    sql_text: str,
    params: Any,
    many: bool,
    context: dict[str, Any],
    tables: list[str],
) -> tuple[Any, bool]:
    """BEGIN, the marks, the write, COMMIT. Should marking fail, the write runs as it would
    have without the library (logged: the views may stay stale)."""
    connection = context["connection"]
    cursor = context.get("cursor")
    try:
        with transaction.atomic(using=connection.alias):
            try:
                ids = insert_marks(connection, tables, savepoint=False)
            except Exception as exc:
                raise _MarksFailed from exc
            result = execute(sql_text, params, many, context)
            changed = not changed_nothing(cursor, sql_text, many)
            if not changed:  # rare: an UPDATE or DELETE that matched nothing
                delete_marks(connection, ids)
    except _MarksFailed:
        logger.exception("live_matview could not record a write; views may stay stale.")
        result = execute(sql_text, params, many, context)
        changed = not changed_nothing(cursor, sql_text, many)
    return result, changed
