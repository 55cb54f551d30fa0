"""Which models are views, and which models each one declares it reads."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import models

from .declaration import ViewDeclaration, ViewModel


def view_models() -> list[ViewModel]:
    """Every concrete view model of the installed apps, in a stable order."""
    found = [
        model
        for model in apps.get_models()
        if issubclass(model, ViewDeclaration) and not model._meta.proxy
    ]
    return sorted(found, key=lambda model: model._meta.label_lower)


def resolve_model(reference: Any) -> type[models.Model] | None:
    """A ``refresh_on`` entry as a model class, or ``None`` if it names no installed model."""
    if isinstance(reference, type) and issubclass(reference, models.Model):
        return reference
    if isinstance(reference, str) and reference.count(".") == 1:
        try:
            return apps.get_model(reference)
        except (LookupError, ValueError):
            return None
    return None


def declared_sources(model: ViewModel) -> list[type[models.Model]]:
    """The models named in ``refresh_on`` (empty for ``"auto"``, which the database answers)."""
    if model.refresh_on == "auto":
        return []
    resolved = (resolve_model(entry) for entry in model.refresh_on)
    return [source for source in resolved if source is not None]
