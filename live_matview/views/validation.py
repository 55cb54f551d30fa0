"""What would make the sync fail on a view's declaration, found without a database.

``checks.py`` reports these at start-up (``live_matview.E020`` to ``E023``), so a bad SQL
file, a name Django cannot query or a missing primary key is named before any DDL runs.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import QuerySet

from ..exceptions import DependencyCycleError, ViewDefinitionError
from .declaration import ViewModel
from .graph import DependencyGraph
from .query import get_queryset, read_sql_file, sql_file_path
from .registry import declared_sources

#: (check id without the "live_matview." prefix, message, hint)
Problem = tuple[str, str, str]


def schema_input_problems(model: ViewModel) -> list[Problem]:
    return [
        problem
        for problem in (_sql_file(model), _table_name(model), _primary_key(model))
        if problem is not None
    ]


def _sql_file(model: ViewModel) -> Problem | None:
    try:
        if get_queryset(model) is not None or sql_file_path(model) is None:
            return None  # a QuerySet, or no file at all (E004)
        read_sql_file(model)
    except ViewDefinitionError as exc:
        return (
            "E020",
            str(exc),
            "Keep exactly one SELECT (or WITH ... SELECT) in the file; comments and a "
            "trailing ';' are fine. Run other statements in a migration.",
        )
    except Exception:  # noqa: BLE001  (a QuerySet method that raises is E006)
        return None
    return None


def _table_name(model: ViewModel) -> Problem | None:
    """Django's ``quote_name`` leaves a name alone when it starts and ends with ``"``, else
    wraps it in quotes without escaping any inside; and every query Django runs with
    parameters passes its SQL through ``%`` formatting. Our DDL would cope with both, the
    ORM cannot, so such a view could be created but never read: refuse the name."""
    db_table = str(model._meta.db_table)
    quoted_form = len(db_table) >= 2 and db_table.startswith('"') and db_table.endswith('"')
    if "%" in db_table:
        problem = "contains '%', which Django's database layer reads as a query parameter"
    elif '"' in db_table and not quoted_form:
        problem = "contains '\"', which Django's ORM puts into SQL without escaping it"
    else:
        return None
    return (
        "E021",
        f"{model._meta.label}: Meta.db_table {db_table!r} {problem}, so the view could be "
        "created but not queried.",
        "Choose a name without '%'. For a '\"', quote the whole name and double the quote "
        'inside, as SQL does: db_table = \'"it""s"\'.',
    )


def _primary_key(model: ViewModel) -> Problem | None:
    """A view without a ``primary_key=True`` field gets Django's ``id``; when its QuerySet
    returns no such column, say so here rather than as a missing column in the sync.
    (A SQL file's columns are known only once the view exists: the sync says it then.)"""
    pk = model._meta.pk
    if pk is None or not pk.auto_created:
        return None
    try:
        queryset = get_queryset(model)
        columns = None if queryset is None else queryset_columns(queryset)
    except Exception:  # noqa: BLE001  (reported by E005/E006)
        return None
    if columns is None or pk.column in columns:
        return None
    index = " create_pkey_index = True would index it, but" if model.create_pkey_index else ""
    return (
        "E022",
        f"{model._meta.label} has no field with primary_key=True, so Django gave it an "
        f"'{pk.column}' column;{index} its query returns no '{pk.column}'.",
        "Mark the field that identifies a row with primary_key=True (for example "
        "customer = models.OneToOneField(..., primary_key=True)).",
    )


def queryset_columns(queryset: QuerySet[Any]) -> set[str] | None:
    """The names of the columns the QuerySet's SELECT returns; ``None`` if unknown."""
    try:
        compiler = queryset.query.get_compiler(using=DEFAULT_DB_ALIAS)
        compiler.setup_query()
    except Exception:  # noqa: BLE001  (Django internals: give up rather than guess)
        return None
    names: set[str] = set()
    for expression, _sql, alias in compiler.select:
        target = getattr(expression, "target", None)
        name = alias or getattr(target, "column", None)
        if not isinstance(name, str):
            return None
        names.add(name)
    return names


def refresh_on_cycle(models: list[ViewModel]) -> list[str] | None:
    """Labels of a cycle of views through ``refresh_on`` entries that name views (A lists
    B, B lists A): each refresh would mark the other view again, forever. Cycles of reads
    alone are E003's."""
    try:
        graph = DependencyGraph.from_querysets(models)
        graph.order()
    except Exception:  # noqa: BLE001  (E003, or broken queries: E005/E006)
        return None
    listed: list[tuple[Any, ViewModel]] = []
    for model in models:
        try:
            sources = declared_sources(model)
        except TypeError:  # refresh_on of the wrong type: E002
            continue
        listed.extend((source, model) for source in sources if source in graph.children)
    try:
        graph.with_edges(listed).order()
    except DependencyCycleError as exc:
        return exc.cycle
    return None
