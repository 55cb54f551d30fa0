"""The capture trigger, declared through django-pgtrigger on every ``refresh_on`` model.

Its body only calls ``live_matview_mark(TG_RELID)``, a function this library's own
migration owns: the trigger never changes when the marking logic does, so user apps get
one migration per source model, once. Statement level: a bulk write fires it once, not
once per row.
"""

from __future__ import annotations

import logging
from typing import Any

import pgtrigger
from django.apps import apps
from django.db import DatabaseError, connections, transaction
from django.db.models import Model
from django.db.models.signals import class_prepared, pre_migrate
from pgtrigger import compiler
from pgtrigger import core as pgtrigger_core
from pgtrigger import registry as pgtrigger_registry

from .. import conf
from .._compat import sql, sqlstate
from ..views.declaration import ViewDeclaration
from ..views.names import RelationName, as_string
from ..views.registry import declared_sources, view_models
from .trigger_sql import CaptureTriggerSql

logger = logging.getLogger("live_matview.capture")

TRIGGER_NAME = "live_matview"


class CaptureTrigger(pgtrigger.Trigger):
    """A pgtrigger trigger whose installation SQL skips pgtrigger's ignore check."""

    def compile(self, model: Any) -> compiler.Trigger:
        compiled = super().compile(model)
        kwargs = {k: v for k, v in compiled.sql.kwargs.items() if k != "ignore_func_name"}
        return compiler.Trigger(name=self.name, sql=CaptureTriggerSql(**kwargs))


def capture_trigger() -> pgtrigger.Trigger:
    function = RelationName("live_matview_mark", conf.schema())
    return CaptureTrigger(
        name=TRIGGER_NAME,
        level=pgtrigger.Statement,
        when=pgtrigger.After,
        operation=pgtrigger.Insert | pgtrigger.Update | pgtrigger.Delete | pgtrigger.Truncate,
        func=f"PERFORM {_sql_name(function)}(TG_RELID); RETURN NULL;",
    )


def _sql_name(name: RelationName) -> str:
    # Built at import time without a connection: both parts are plain identifiers we
    # control (the schema comes from a setting), quoted by hand the way PostgreSQL does.
    parts = [name.schema, name.name] if name.schema else [name.name]
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


_TRIGGER = None


def trigger() -> pgtrigger.Trigger:
    global _TRIGGER
    if _TRIGGER is None:
        _TRIGGER = capture_trigger()
    return _TRIGGER


def trigger_models() -> list[type[Model]]:
    """Source models that get the capture trigger: declared, concrete data (not views),
    and not auto-created m2m tables (pgtrigger needs a proxy for those)."""
    found: dict[str, type[Model]] = {}
    for view in view_models():
        for source in declared_sources(view):
            if _wants_trigger(source):
                found.setdefault(source._meta.label, source)
    return [found[label] for label in sorted(found)]


def _wants_trigger(model: type[Model]) -> bool:
    return not issubclass(model, ViewDeclaration) and not model._meta.auto_created


#: ``(view label, refresh_on entry)`` pairs whose model was not loaded when apps were
#: ready: their trigger is registered when the model loads, and a check warns about them.
loaded_late: set[tuple[str, str]] = set()
#: ``(app_label, model_name)`` of string sources not loaded yet.
_pending: set[tuple[str, str]] = set()


def register_triggers() -> None:
    """Put the trigger in each source model's Meta.triggers, so ``makemigrations`` writes
    it into the model's app like any pgtrigger trigger (called from ``ready()``); and see
    that the function it calls exists before any migration runs (``ensure_mark_function``).

    A source named by a string is registered when its model loads, which may be after
    this runs (a module the app's ``models`` does not import); so are the sources of a view
    model that loads late. ``class_prepared`` rather than ``apps.lazy_model_operation``:
    a pending lazy operation on a misspelt name would add Django's own error to E002.
    """
    # Whatever the capture mode: migrations written in trigger mode hold triggers anyway.
    pre_migrate.connect(ensure_mark_function, dispatch_uid="live_matview.capture.mark_function")
    if conf.capture() != "triggers" or not apps.is_installed("pgtrigger"):
        return
    class_prepared.connect(_model_prepared, dispatch_uid="live_matview.capture.triggers")
    for view in view_models():
        _register_sources(view)


def _model_prepared(sender: type[Model], **kwargs: Any) -> None:
    if sender._meta.apps is not apps:  # isolate_apps() and migration states: not ours
        return
    if (sender._meta.app_label, sender._meta.model_name) in _pending:
        _register(sender)
    if issubclass(sender, ViewDeclaration) and not sender._meta.abstract:
        _register_sources(sender)


def _register_sources(view: type[ViewDeclaration]) -> None:
    if isinstance(view.refresh_on, str):  # "auto", or a mistake that E002 reports
        return
    for entry in view.refresh_on:
        if isinstance(entry, type) and issubclass(entry, Model):
            _register(entry)
        elif isinstance(entry, str) and entry.count(".") == 1:
            app_label, model_name = entry.split(".")
            try:
                _register(apps.get_registered_model(app_label, model_name.lower()))
            except LookupError:
                loaded_late.add((view._meta.label, entry))
                _pending.add((app_label, model_name.lower()))


def _register(model: type[Model]) -> None:
    """Register the trigger on ``model`` once; a table gets one capture trigger."""
    if not _wants_trigger(model):
        return
    found = pgtrigger_registry._registry.by_db_table.get((model._meta.db_table, TRIGGER_NAME))
    if found is None:
        trigger().register(model)  # type: ignore[arg-type]


#: Stands in for ``live_matview_mark()`` until this library's migration 0002 replaces it.
_PLACEHOLDER = """
CREATE FUNCTION {function}(source oid) RETURNS void LANGUAGE plpgsql AS $body$
BEGIN
    RETURN;  -- no view exists before live_matview is migrated: nothing to mark
END
$body$
"""
DUPLICATE_FUNCTION = "42723"


def ensure_mark_function(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """Before ``migrate`` runs any migration, make sure ``live_matview_mark(oid)`` exists.

    Migrations of user apps create capture triggers, and Django may run them (and a data
    migration that writes the table) before live_matview's own ``0002_capture`` made the
    function, which has no dependency to tell it otherwise: the write would fail with
    "function live_matview_mark(oid) does not exist". A placeholder that marks nothing is
    right then (no view exists yet); 0002 replaces it. The trigger itself is unchanged,
    so writers pay nothing for this.
    """
    if getattr(sender, "label", None) != "live_matview":
        return  # pre_migrate is sent once per app: act once
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    schema = conf.schema()
    function = as_string(
        sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier("live_matview_mark")),
        connection,
    )
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(
            "SELECT to_regnamespace(%s) IS NOT NULL, to_regprocedure(%s) IS NOT NULL",
            [as_string(sql.Identifier(schema), connection), f"{function}(oid)"],
        )
        schema_exists, function_exists = cursor.fetchone()
        if not schema_exists or function_exists:
            return
        try:
            with transaction.atomic(using=using):
                cursor.execute(_PLACEHOLDER.format(function=function))
        except DatabaseError as exc:
            if sqlstate(exc) != DUPLICATE_FUNCTION:  # another migrate made it meanwhile
                raise
        logger.info("Created a placeholder %s(oid) for capture triggers.", function)


def ensure_triggers(using: str, models: list[type[Model]]) -> list[str]:
    """Install the trigger where it is missing or outdated (a model whose migration was not
    made yet, or an ``"auto"`` source); returns the labels installed."""
    installed = []
    for model in models:
        status, _enabled = trigger().get_installation_status(
            model,  # type: ignore[arg-type]
            database=using,
        )
        if status != pgtrigger_core.INSTALLED:
            trigger().install(model, database=using)  # type: ignore[arg-type]
            installed.append(model._meta.label)
            logger.info("Installed the capture trigger on %s.", model._meta.label)
    return installed
