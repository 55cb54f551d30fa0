"""Django-side capture: which tables the statements of this connection wrote.

An execute wrapper on every PostgreSQL connection reads the head of each statement
(``INSERT INTO``, ``UPDATE``, ``DELETE FROM``, ``TRUNCATE``, data-modifying ``WITH``): no
query is added per statement. Writes are remembered per savepoint level, so a rolled-back
savepoint drops what it wrote, and handed to the refresh stage once, when the outermost
transaction commits (through ``transaction.on_commit``), or at once in autocommit.

In trigger mode the database records the durable marks; here we only learn what to
refresh. In signals mode this is the whole capture, and the first write to each source
table in a transaction also inserts its marks, in that transaction.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any

from django.db import transaction

from .. import conf
from .autocommit import write_with_marks
from .marks import changed_nothing, insert_marks
from .source_map import source_map

logger = logging.getLogger("live_matview.capture")

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_QUALIFIED = rf"({_IDENT})(?:\s*\.\s*({_IDENT}))?"
_WRITE_HEAD = re.compile(
    rf"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO)\s+(?:ONLY\s+)?{_QUALIFIED}",
    re.IGNORECASE,
)
_WRITE_ANYWHERE = re.compile(
    rf"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO)\s+(?:ONLY\s+)?{_QUALIFIED}",
    re.IGNORECASE,
)
_TRUNCATE = re.compile(r"\s*TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?([^;]*)", re.IGNORECASE)
_ROLLBACK_TO = re.compile(r'\s*ROLLBACK\s+TO\s+(?:SAVEPOINT\s+)?("(?:[^"]|"")+"|\w+)', re.I)
_READ_HEADS = ("SELECT", "SAVEPOINT", "RELEASE", "SET", "SHOW", "BEGIN", "COMMIT", "VALUES")


def _unquote(identifier: str) -> str:
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


def _key(first: str, second: str | None) -> str:
    return f"{_unquote(first)}.{_unquote(second)}" if second else _unquote(first)


def written_tables(sql: str) -> tuple[str, ...]:
    """Tables a statement writes, as ``name`` or ``schema.name``; () for reads.

    Short statements are cached (Django sends the same text, with placeholders, for every
    save of a model); long ones, such as a bulk insert, are parsed from their head only.
    """
    if len(sql) <= _CACHED_LENGTH:
        return _cached_written_tables(sql)
    return tuple(_parse_written_tables(sql))


_CACHED_LENGTH = 4096


@functools.lru_cache(maxsize=1024)
def _cached_written_tables(sql: str) -> tuple[str, ...]:
    return tuple(_parse_written_tables(sql))


def _parse_written_tables(sql: str) -> list[str]:
    head = sql[:12].lstrip().upper()
    if head.startswith(_READ_HEADS):
        return []
    if head.startswith(("INSERT", "UPDATE", "DELETE", "MERGE")):
        match = _WRITE_HEAD.match(sql)
        return [_key(match.group(1), match.group(2))] if match else []
    if head.startswith("TRUNCATE"):
        match = _TRUNCATE.match(sql)
        if match is None:
            return []
        names = re.finditer(_QUALIFIED, match.group(1))
        return [
            _key(name.group(1), name.group(2))
            for name in names
            if name.group(1).upper()
            not in ("RESTART", "CONTINUE", "CASCADE", "RESTRICT", "IDENTITY")
        ]
    if head.startswith("WITH") or head.startswith("("):
        return [_key(m.group(1), m.group(2)) for m in _WRITE_ANYWHERE.finditer(sql)]
    return []


#: Called with (database alias, tables written) once a write has committed. The refresh
#: stage connects its dispatcher here from ``apps.ready()``: capture sits below refresh
#: and must not import it.
CommitListener = Callable[[str, set[str]], None]
_listeners: list[CommitListener] = []


def on_writes_committed(listener: CommitListener) -> None:
    """Call ``listener(alias, tables)`` after each commit that wrote captured tables."""
    if listener not in _listeners:
        _listeners.append(listener)


def _announce(alias: str, tables: set[str]) -> None:
    for listener in _listeners:
        listener(alias, tables)


class _Transaction:
    """The writes of one outermost transaction, by the savepoint level that made them."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.entries: set[tuple[tuple[Any, ...], str]] = set()
        # The subset whose marks this transaction still has (a refresh inside it deletes them).
        self.marked: set[tuple[tuple[Any, ...], str]] = set()
        # Statement table lists already handled, per savepoint level: the fast path.
        self.seen: set[tuple[tuple[Any, ...], tuple[str, ...]]] = set()
        self.rolled_back: set[str] = set()
        self.hooks: list[Any] | None = None
        self.done = False

    def alive_in(self, hooks: list[Any]) -> bool:
        return any(getattr(entry[1], "__self__", None) is self for entry in hooks)

    def flush(self) -> None:
        """Runs on commit (first of this transaction's callbacks to run)."""
        if self.done:
            return
        self.done = True
        tables = {table for sids, table in self.entries if not self.rolled_back.intersection(sids)}
        if tables:
            _announce(self.alias, tables)


def _current_transaction(connection: Any) -> _Transaction:
    """This connection's transaction record, a new one when the last one ended.

    Django replaces ``run_on_commit`` when a transaction ends or a savepoint rolls back;
    a record whose callbacks are no longer in it belongs to a finished transaction.
    """
    current = getattr(connection, "_live_matview_transaction", None)
    hooks = connection.run_on_commit
    alive = current is not None and (current.hooks is hooks or current.alive_in(hooks))
    if current is not None and not current.done and alive:
        current.hooks = hooks
        return current
    current = _Transaction(connection.alias)
    connection._live_matview_transaction = current
    return current


def _record_writes(connection: Any, tables: tuple[str, ...]) -> None:
    record = getattr(connection, "_live_matview_transaction", None)
    if (
        record is not None
        and not record.done
        and connection.in_atomic_block
        and record.hooks is connection.run_on_commit
        and (tuple(connection.savepoint_ids), tables) in record.seen
    ):
        return  # the fast path: this transaction already recorded these tables at this level
    sources = source_map(connection.alias)
    hits = [table for table in tables if table in sources.views_by_table]
    if not hits:
        return
    if not connection.in_atomic_block:
        if connection.get_autocommit():  # the statement has committed already
            insert_marks(connection, _unmarked(sources, hits))
            if sources.act_on_commit(hits):  # manual views only: nothing more to do
                _announce(connection.alias, set(hits))
        return  # manual transaction management: nothing to hook the commit on
    record = _current_transaction(connection)
    sids = tuple(connection.savepoint_ids)
    record.seen.add((sids, tables))
    new = [table for table in hits if (sids, table) not in record.marked]
    if not new:
        return
    insert_marks(connection, _unmarked(sources, new))
    record.marked.update((sids, table) for table in new)
    record.entries.update((sids, table) for table in new)
    transaction.on_commit(record.flush, using=connection.alias)
    record.hooks = connection.run_on_commit


def marks_covered(connection: Any) -> None:
    """A refresh inside this connection's transaction deleted marks it had written: its
    next write to any source must mark again (the refresh stage calls this)."""
    record = getattr(connection, "_live_matview_transaction", None)
    if record is not None:
        record.marked.clear()
        record.seen.clear()


def _unmarked(sources: Any, tables: list[str]) -> list[str]:
    """Tables whose marks no trigger writes: all of them in signals mode; in trigger mode
    those without the trigger (auto-created m2m tables, a trigger not installed yet)."""
    if conf.capture() == "signals":
        return tables
    return [table for table in tables if table not in sources.triggered]


def _python_marks(connection: Any, sql: str) -> tuple[Any, list[str], list[str]] | None:
    """(source map, source tables written, those whose marks Python writes) of a write that
    needs marks from here (signals mode, or a table without the trigger); else None."""
    tables = written_tables(sql)
    if not tables:
        return None
    sources = source_map(connection.alias)
    hits = [table for table in tables if table in sources.views_by_table]
    needed = _unmarked(sources, hits)
    if not needed or not sources.readers_of(needed):
        return None
    return sources, hits, needed


def _write_with_marks(
    execute: Any,
    sql: str,
    params: Any,
    many: bool,
    context: dict[str, Any],
    plan: tuple[Any, list[str], list[str]],
) -> Any:
    """An autocommit write whose marks come from Python: the marks and the write commit
    together, with one commit (``autocommit.write_with_marks``); then the refresh stage
    hears of it, as of any other commit."""
    connection = context["connection"]
    sources, hits, needed = plan
    result, changed = write_with_marks(execute, sql, params, many, context, needed)
    try:
        if changed and sources.act_on_commit(hits):
            _announce(connection.alias, set(hits))
    except Exception:  # noqa: BLE001  (the write has committed: never break it)
        logger.exception("live_matview could not act on a committed write.")
    return result


def _note_rollback(connection: Any, sql: str) -> None:
    match = _ROLLBACK_TO.match(sql)
    record = getattr(connection, "_live_matview_transaction", None)
    if match and record is not None:
        record.rolled_back.add(_unquote(match.group(1)))


def capture_statements(
    execute: Any, sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """The execute wrapper. It looks only after the statement succeeded (but for an
    autocommit write that Python marks: see ``_write_with_marks``), and never lets a
    problem of its own reach the caller's statement."""
    if not isinstance(sql, str):
        return execute(sql, params, many, context)
    connection = context["connection"]
    if connection.autocommit and not connection.in_atomic_block:
        try:
            plan = _python_marks(connection, sql)
        except Exception:  # noqa: BLE001  (never break the caller's statement)
            logger.exception("live_matview could not record a write; views may stay stale.")
            plan = None
        if plan is not None:
            return _write_with_marks(execute, sql, params, many, context, plan)
    result = execute(sql, params, many, context)
    try:
        if sql[:12].lstrip()[:8].upper() == "ROLLBACK":
            _note_rollback(connection, sql)
        else:
            tables = written_tables(sql)
            if tables and not changed_nothing(context.get("cursor"), sql, many):
                _record_writes(connection, tables)
    except Exception:  # noqa: BLE001  (never break the caller's statement)
        logger.exception("live_matview could not record a write; views may stay stale.")
    return result


def install(connection: Any) -> None:
    """Add the wrapper to a PostgreSQL connection once (``connection_created`` calls this)."""
    if connection.vendor != "postgresql":
        return
    if capture_statements not in connection.execute_wrappers:
        connection.execute_wrappers.append(capture_statements)
