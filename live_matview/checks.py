"""System checks: catch mistakes in view declarations and settings at start-up.

Ids are stable (``live_matview.E0xx``); each message names the model or setting at fault
and each hint says the fix.
"""

from __future__ import annotations

import importlib.util
import sysconfig
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import router
from django.db.models import Model, UniqueConstraint

from . import conf
from .capture import checks as _capture_checks  # noqa: F401  (registers W002, W003)
from .exceptions import DependencyCycleError, ViewDefinitionError
from .models import MaterializedViewRefreshLog
from .views.declaration import ViewDeclaration
from .views.graph import DependencyGraph, queryset_identifiers
from .views.incremental_checks import check_incremental
from .views.names import RelationName
from .views.query import get_queryset, queryset_method_is_static, sql_file_candidates, sql_file_path
from .views.registry import declared_sources, resolve_model, view_models
from .views.validation import refresh_on_cycle, schema_input_problems

POSTGRES_ENGINES = ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis")


@register(Tags.compatibility)
def check_database_engines(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    models: list[type[Model]] = [MaterializedViewRefreshLog, *view_models()]
    for alias, config in settings.DATABASES.items():
        engine = config.get("ENGINE", "")
        if engine in POSTGRES_ENGINES or engine.startswith("django.db.backends.postgresql"):
            continue
        if any(router.allow_migrate_model(alias, model) for model in models):
            errors.append(
                Error(
                    f"Database {alias!r} uses {engine or 'no ENGINE'}, but live_matview "
                    "needs PostgreSQL.",
                    hint="Use django.db.backends.postgresql for this database, or route "
                    "live_matview and the view models away from it with a database router.",
                    id="live_matview.E001",
                )
            )
    return errors


@register(Tags.models)
def check_view_models(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    models = view_models()
    wanted = None if app_configs is None else {config.label for config in app_configs}
    for model in models:
        if wanted is not None and model._meta.app_label not in wanted:
            continue
        errors.extend(_check_model(model))
    errors.extend(_check_cycles(models))
    errors.extend(_check_coverage(models, wanted))
    return errors


@register(Tags.models)
def check_capture(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for setting, value, allowed in (
        ("LIVE_MATVIEW_CAPTURE", conf.capture(), conf.CAPTURE_MODES),
        ("LIVE_MATVIEW_REFRESH_MODE", conf.refresh_mode(), conf.REFRESH_MODES),
        ("LIVE_MATVIEW_ASYNC", conf.async_backend(), conf.ASYNC_BACKENDS),
    ):
        if value not in allowed:
            errors.append(
                Error(
                    f"{setting} is {value!r}.",
                    hint=f"Set it to one of: {', '.join(map(repr, allowed))}.",
                    id="live_matview.E011",
                )
            )
    if conf.async_backend() == "celery" and importlib.util.find_spec("celery") is None:
        errors.append(
            Error(
                "LIVE_MATVIEW_ASYNC is 'celery' but Celery is not installed.",
                hint='pip install "live-matview[celery]", or set LIVE_MATVIEW_ASYNC = "thread".',
                id="live_matview.E014",
            )
        )
    needs_triggers = conf.capture() == "triggers" and any(
        model.refresh_on for model in view_models()
    )
    if needs_triggers and not apps.is_installed("pgtrigger"):
        errors.append(
            Error(
                "LIVE_MATVIEW_CAPTURE is 'triggers' but django-pgtrigger is not installed.",
                hint="Add 'pgtrigger' to INSTALLED_APPS, or set LIVE_MATVIEW_CAPTURE = 'signals'.",
                id="live_matview.E009",
            )
        )
    return errors


def _check_model(model: Any) -> list[CheckMessage]:
    label = model._meta.label
    errors: list[CheckMessage] = []
    if model._meta.managed:
        errors.append(
            Error(
                f"{label} sets Meta.managed = True, so Django's migrations would make it a table.",
                hint="Remove managed = True from its Meta (views are unmanaged by default).",
                obj=model,
                id="live_matview.E007",
            )
        )
    try:
        RelationName.parse(model._meta.db_table)
    except ValueError as exc:
        errors.append(
            Error(
                f"{label}: {exc}",
                hint="Write Meta.db_table as a plain name, or quoted like Django expects: "
                '\'"schema"."name"\'.',
                obj=model,
                id="live_matview.E013",
            )
        )
    errors.extend(_check_query(model))
    errors.extend(_check_refresh_on(model))
    errors.extend(check_incremental(model))
    if model.refresh_mode is not None and model.refresh_mode not in conf.REFRESH_MODES:
        errors.append(
            Error(
                f"{label}.refresh_mode is {model.refresh_mode!r}.",
                hint=f"Use one of {', '.join(map(repr, conf.REFRESH_MODES))}, or None.",
                obj=model,
                id="live_matview.E012",
            )
        )
    if model.refresh_concurrently is True and not _declares_unique_index(model):
        errors.append(
            Error(
                f"{label}.refresh_concurrently is True, but the view declares no unique index, "
                "which REFRESH ... CONCURRENTLY needs.",
                hint="Set create_pkey_index = True or add a UniqueConstraint on its columns "
                "to Meta.constraints.",
                obj=model,
                id="live_matview.E010",
            )
        )
    return errors


def _check_query(model: Any) -> list[CheckMessage]:
    label = model._meta.label
    if not queryset_method_is_static(model):
        return [
            Error(
                f"{label}.get_query_from_queryset is a plain method; it is called on the class.",
                hint="Decorate it with @staticmethod or @classmethod.",
                obj=model,
                id="live_matview.E005",
            )
        ]
    try:
        queryset = get_queryset(model)
    except ViewDefinitionError as exc:
        return [
            Error(
                str(exc),
                hint="Return a QuerySet (for example Model.objects.values(...)), or None to "
                "use a SQL file.",
                obj=model,
                id="live_matview.E006",
            )
        ]
    except Exception as exc:  # noqa: BLE001  (user code: any failure is reported, not raised)
        return [
            Error(
                f"{label}.get_query_from_queryset() raised {type(exc).__name__}: {exc}",
                hint="Fix the method so that it returns a QuerySet.",
                obj=model,
                id="live_matview.E006",
            )
        ]
    if queryset is None and sql_file_path(model) is None:
        return [
            Error(
                f"{label} has no query: get_query_from_queryset() returns None and its SQL "
                f"file {sql_file_candidates(model)[0]} does not exist.",
                hint="Create that file with the view's SELECT, or return a QuerySet from "
                "get_query_from_queryset().",
                obj=model,
                id="live_matview.E004",
            )
        ]
    return []


def _check_refresh_on(model: Any) -> list[CheckMessage]:
    label = model._meta.label
    refresh_on = model.refresh_on
    if refresh_on == "auto":
        return []
    if isinstance(refresh_on, str) or not isinstance(refresh_on, Iterable):
        return [
            Error(
                f"{label}.refresh_on is {refresh_on!r}.",
                hint='Use a list of models or "app_label.Model" strings, or "auto".',
                obj=model,
                id="live_matview.E002",
            )
        ]
    errors: list[CheckMessage] = []
    for entry in refresh_on:
        source = resolve_model(entry)
        if source is None:
            errors.append(
                Error(
                    f"{label}.refresh_on entry {entry!r} is not an installed model.",
                    hint='Give a model class or an "app_label.Model" string of an installed app.',
                    obj=model,
                    id="live_matview.E002",
                )
            )
        elif (
            conf.capture() == "triggers"
            and not issubclass(source, ViewDeclaration)
            and _is_third_party(source)
        ):
            errors.append(
                Error(
                    f"{label}.refresh_on names {source._meta.label}, whose app "
                    f"({source._meta.app_label}) is installed as a package: its capture "
                    "trigger would need a migration written inside that package.",
                    hint=f"Declare a proxy model of {source._meta.label} in one of your apps "
                    "(class Meta: proxy = True) and list the proxy in refresh_on.",
                    obj=model,
                    id="live_matview.E008",
                )
            )
    return errors


def _check_coverage(models: list[Any], wanted: set[str] | None) -> list[CheckMessage]:
    """A view that refreshes on writes but reads a table none of its sources cover would
    go stale on writes to that table (e.g. a view on a view that also joins names)."""
    try:
        graph = DependencyGraph.from_querysets(models)
        ordered = graph.order()
    except Exception:  # noqa: BLE001  (reported by E003/E005/E006)
        return []
    tables = {
        model._meta.db_table: model
        for model in apps.get_models(include_auto_created=True)
        if not model._meta.proxy and model not in graph.children
    }
    covered: dict[Any, set[str]] = {}
    for view in ordered:
        own = {_table(source) for source in declared_sources(view) if source not in graph.children}
        own |= {_table(m2m) for source in declared_sources(view) for m2m in _m2m_tables(source)}
        inherited = set().union(*(covered[parent] for parent in graph.parents[view]))
        named_views = [s for s in declared_sources(view) if s in graph.children]
        inherited |= set().union(*(covered.get(parent, set()) for parent in named_views))
        covered[view] = own | inherited
    warnings: list[CheckMessage] = []
    for view in ordered:
        if view.refresh_on == "auto" or not covered[view]:
            continue  # "auto" follows the database; no sources at all means refreshed by hand
        if (wanted is not None and view._meta.app_label not in wanted) or view in graph.broken:
            continue  # a view whose query cannot be built is reported by E006
        read = queryset_identifiers(view) & set(tables)  # a SQL file: none (pg_depend)
        for table in sorted(read - covered[view]):
            warnings.append(
                Warning(
                    f"{view._meta.label} reads {table} ({tables[table]._meta.label}), which "
                    "is not among its sources: writes there will not refresh it.",
                    hint=f'Add "{tables[table]._meta.label}" to its refresh_on, or use '
                    'refresh_on = "auto".',
                    obj=view,
                    id="live_matview.W001",
                )
            )
    return warnings


def _table(model: Any) -> str:
    return str(model._meta.db_table)


def _m2m_tables(model: Any) -> list[Any]:
    return [
        field.remote_field.through
        for field in model._meta.local_many_to_many
        if field.remote_field.through._meta.auto_created
    ]


def _check_cycles(models: list[Any]) -> list[CheckMessage]:
    try:
        DependencyGraph.from_querysets(models).order()
    except DependencyCycleError as exc:
        return [
            Error(
                str(exc),
                hint="A view cannot read itself through other views; remove one read.",
                id="live_matview.E003",
            )
        ]
    except Exception:  # noqa: BLE001  (a broken query is reported per model by E005/E006)
        return []
    return []


def _declares_unique_index(model: Any) -> bool:
    return bool(model.create_pkey_index) or any(
        isinstance(constraint, UniqueConstraint)
        and constraint.fields
        and constraint.condition is None
        for constraint in model._meta.constraints
    )


def _is_third_party(model: Any) -> bool:
    """Whether the model's app lives in an installed package, whose migrations are not yours."""
    app_path = Path(model._meta.app_config.path).resolve()
    roots = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    return any(app_path.is_relative_to(Path(root).resolve()) for root in roots)


# Schema inputs: what the sync would refuse, caught at start-up instead (E020-E023).


@register(Tags.models)
def check_schema_inputs(
    app_configs: Iterable[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    models = view_models()
    wanted = None if app_configs is None else {config.label for config in app_configs}
    errors: list[CheckMessage] = [
        Error(message, hint=hint, obj=model, id=f"live_matview.{code}")
        for model in models
        if wanted is None or model._meta.app_label in wanted
        for code, message, hint in schema_input_problems(model)
    ]
    cycle = refresh_on_cycle(models)
    if cycle:
        errors.append(
            Error(
                "Materialized views depend on each other in a cycle through refresh_on: "
                f"{' -> '.join(cycle)}.",
                hint="A view's refresh_on may list views it reads, never one that reads it; "
                "remove one of these entries from refresh_on.",
                id="live_matview.E023",
            )
        )
    return errors
