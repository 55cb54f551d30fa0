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
from django.db.models import Model
from pgtrigger import compiler
from pgtrigger import core as pgtrigger_core

from .. import conf
from ..views.declaration import ViewDeclaration
from ..views.names import RelationName
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
            if issubclass(source, ViewDeclaration) or source._meta.auto_created:
                continue
            found.setdefault(source._meta.label, source)
    return [found[label] for label in sorted(found)]


def register_triggers() -> None:
    """Put the trigger in each source model's Meta.triggers, so ``makemigrations`` writes
    it into the model's app like any pgtrigger trigger (called from ``ready()``)."""
    if conf.capture() != "triggers" or not apps.is_installed("pgtrigger"):
        return
    for model in trigger_models():
        trigger().register(model)  # type: ignore[arg-type]


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
