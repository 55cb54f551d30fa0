"""The declaration of a view: the attributes every view model has, and the metaclass that
keeps views out of Django's migrations.

``base_model.MaterializedViewModel`` (the public class) adds what needs the stages above
(``refresh()``); every stage below it recognises a view by this base class, so none of
them has to import the public face.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from django.db import models
from django.db.models.base import ModelBase

if TYPE_CHECKING:
    from django.db.models import QuerySet

__all__ = ["DBViewsRegistry", "MaterializedViewModelBase", "ViewDeclaration", "ViewModel"]

#: Concrete view models by ``db_table``, kept for code written against
#: django-materialized-view. New code should use ``live_matview.views.registry``.
DBViewsRegistry: dict[str, type[ViewDeclaration]] = {}


class MaterializedViewModelBase(ModelBase):
    """Makes views unmanaged by default, so Django's migrations never create them as tables."""

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any], **kwargs: Any):
        meta = attrs.get("Meta")
        if meta is not None and not hasattr(meta, "managed"):
            meta.managed = False
        cls = super().__new__(mcs, name, bases, attrs, **kwargs)
        options = cls._meta  # type: ignore[attr-defined]
        if not options.abstract and not options.proxy:
            DBViewsRegistry[options.db_table] = cls  # type: ignore[assignment]
        return cls


class ViewDeclaration(models.Model, metaclass=MaterializedViewModelBase):
    """What a view declares. Subclass ``live_matview.MaterializedViewModel``, not this."""

    #: Add a unique index on the primary-key column, which makes ``CONCURRENTLY`` possible.
    create_pkey_index: ClassVar[bool] = False
    #: Models (or ``"app_label.Model"`` strings) whose writes make this view stale, or
    #: ``"auto"`` to take them from the view's definition as PostgreSQL records it; or a
    #: dict ``{source: "lookup__to_the_key"}``, which makes the view incremental.
    refresh_on: ClassVar[
        Sequence[type[models.Model] | str]
        | Mapping[type[models.Model] | str, str]
        | Literal["auto"]
    ] = ()
    #: ``"on_commit"``, ``"async"`` or ``"manual"``; ``None`` follows LIVE_MATVIEW_REFRESH_MODE.
    refresh_mode: ClassVar[str | None] = None
    #: Seconds: at most one refresh per window (async mode and the worker).
    refresh_debounce: ClassVar[float | None] = None
    #: ``None`` chooses per refresh; ``True`` requires a unique index; ``False`` is always plain.
    refresh_concurrently: ClassVar[bool | None] = None

    class Meta:
        abstract = True
        managed = False

    @staticmethod
    def get_query_from_queryset() -> QuerySet[Any] | None:
        """Return the QuerySet that defines the view, or ``None`` to read the SQL file."""
        return None


#: A view model class, as the stages pass them around.
ViewModel = type[ViewDeclaration]
