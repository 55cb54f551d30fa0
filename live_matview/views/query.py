"""Turn a view model into the SELECT that defines it: from its QuerySet or its SQL file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS
from django.db.models import QuerySet

from ..exceptions import ViewDefinitionError
from .declaration import ViewModel
from .sql_file import SqlFileError, single_query

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


SQL_FILES_SUBDIR = Path("models", "materialized_views", "sql_files")


def queryset_method_is_static(model: ViewModel) -> bool:
    """``get_query_from_queryset`` must be callable on the class, as the old library required."""
    for klass in model.__mro__:
        if "get_query_from_queryset" in vars(klass):
            attr = vars(klass)["get_query_from_queryset"]
            return isinstance(attr, staticmethod | classmethod)
    return True


def get_queryset(model: ViewModel) -> QuerySet[Any] | None:
    """The view's QuerySet, ``None`` when it is defined by a SQL file."""
    if not queryset_method_is_static(model):
        raise ViewDefinitionError(
            f"{model._meta.label}.get_query_from_queryset must be a @staticmethod or "
            "@classmethod: it is called on the class."
        )
    result = model.get_query_from_queryset()
    if result is None:
        return None
    if not isinstance(result, QuerySet):
        raise ViewDefinitionError(
            f"{model._meta.label}.get_query_from_queryset() returned "
            f"{type(result).__name__}; return a QuerySet, or None to use a SQL file."
        )
    return result


def sql_file_candidates(model: ViewModel) -> list[Path]:
    """Where the SQL file may be, preferred location first."""
    filename = f"{model.__name__.casefold()}.sql"
    app_config = model._meta.app_config
    assert app_config is not None
    paths = [Path(app_config.path) / SQL_FILES_SUBDIR / filename]
    base_dir = getattr(settings, "BASE_DIR", None)
    if base_dir is not None:  # django-materialized-view's location
        legacy = Path(base_dir) / model._meta.app_label / SQL_FILES_SUBDIR / filename
        if legacy not in paths:
            paths.append(legacy)
    return paths


def sql_file_path(model: ViewModel) -> Path | None:
    """The SQL file that defines the view, or ``None`` if none of the candidates exists."""
    return next((path for path in sql_file_candidates(model) if path.is_file()), None)


def read_sql_file(model: ViewModel) -> tuple[Path, str]:
    path = sql_file_path(model)
    if path is None:
        expected = sql_file_candidates(model)[0]
        raise ViewDefinitionError(
            f"{model._meta.label} has no query: create the SQL file {expected} "
            "or make get_query_from_queryset() return a QuerySet."
        )
    try:
        text = single_query(path.read_text(encoding="utf-8"))
    except SqlFileError as exc:
        raise ViewDefinitionError(
            f"{model._meta.label}: the SQL file {path} is not one SELECT: {exc}. "
            "Nothing of it was run; keep one SELECT (or WITH ... SELECT) in the file."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ViewDefinitionError(
            f"{model._meta.label}: the SQL file {path} is not UTF-8 text: {exc}."
        ) from exc
    return path, text


def view_query(model: ViewModel, using: str = DEFAULT_DB_ALIAS) -> tuple[str, tuple[Any, ...]]:
    """The view's SELECT with placeholders, and its parameters."""
    queryset = get_queryset(model)
    if queryset is None:
        return read_sql_file(model)[1], ()
    query_sql, params = queryset.query.get_compiler(using=using).as_sql()
    return query_sql, tuple(params)


def view_sql(model: ViewModel, connection: BaseDatabaseWrapper) -> str:
    """The view's SELECT as one literal statement, parameters bound by the driver.

    DDL cannot take server-side parameters, so the driver's own client-side binding
    (``mogrify``) inlines them: values are escaped by psycopg, never pasted by us.
    """
    query_sql, params = view_query(model, using=connection.alias)
    if not params:
        return query_sql
    return str(connection.ops.compose_sql(query_sql, params))  # type: ignore[attr-defined]


def describe_source(model: ViewModel) -> str:
    """Where the view's query comes from, for error messages."""
    try:
        if get_queryset(model) is not None:
            return f"{model._meta.label}.get_query_from_queryset()"
    except ViewDefinitionError:
        return f"{model._meta.label}.get_query_from_queryset()"
    path = sql_file_path(model)
    return str(path) if path else str(sql_file_candidates(model)[0])
