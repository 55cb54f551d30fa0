"""``MaterializedViewModel``: a Django model whose table is a PostgreSQL materialized view.

The module path is the one ``django-materialized-view`` used, so code written for it
keeps importing from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from django.db import models
from django.db.models.base import ModelBase

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from .models import MaterializedViewRefreshLog

__all__ = ["DBViewsRegistry", "MaterializedViewModel", "MaterializedViewModelBase"]

#: Concrete view models by ``db_table``, kept for code written against
#: django-materialized-view. New code should use ``live_matview.registry``.
DBViewsRegistry: dict[str, type[MaterializedViewModel]] = {}


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


class MaterializedViewModel(models.Model, metaclass=MaterializedViewModelBase):
    """Subclass this and give it a query to declare a materialized view.

    The query comes from ``get_query_from_queryset()`` when it returns a QuerySet, otherwise
    from ``<app>/models/materialized_views/sql_files/<classname lower>.sql``.
    """

    #: Add a unique index on the primary-key column, which makes ``CONCURRENTLY`` possible.
    create_pkey_index: ClassVar[bool] = False
    #: Models (or ``"app_label.Model"`` strings) whose writes make this view stale, or
    #: ``"auto"`` to take them from the view's definition as PostgreSQL records it.
    refresh_on: ClassVar[Sequence[type[models.Model] | str] | Literal["auto"]] = ()
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

    @classmethod
    def view_definition(cls) -> tuple[str, tuple[Any, ...]]:
        """The view's SELECT and its parameters, exactly as they will be sent to PostgreSQL."""
        from .definition import view_query

        return view_query(cls)

    @classmethod
    def get_tablename(cls) -> str:
        """The view's table name (``Meta.db_table``)."""
        return cls._meta.db_table

    @classmethod
    def refresh(
        cls, using: str | None = None, concurrently: bool | None = None
    ) -> MaterializedViewRefreshLog:
        """Refresh now; ``concurrently=None`` uses CONCURRENTLY when the view allows it.

        Returns the log row written. Raises ``live_matview.RefreshError`` after logging a
        failure.
        """
        from .refresh import Skipped, refresh_view

        log = refresh_view(cls, using=using, concurrently=concurrently, trigger="manual")
        assert not isinstance(log, Skipped)  # it waited for the lock and ignores marks
        return log
