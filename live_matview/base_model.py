"""``MaterializedViewModel``: a Django model whose table is a PostgreSQL materialized view.

The module path is the one ``django-materialized-view`` used, so code written for it
keeps importing from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .refresh.full import Skipped, refresh_view
from .views.declaration import DBViewsRegistry, MaterializedViewModelBase, ViewDeclaration
from .views.query import view_query

if TYPE_CHECKING:
    from .models import MaterializedViewRefreshLog

__all__ = ["DBViewsRegistry", "MaterializedViewModel", "MaterializedViewModelBase"]


class MaterializedViewModel(ViewDeclaration):
    """Subclass this and give it a query to declare a materialized view.

    The query comes from ``get_query_from_queryset()`` when it returns a QuerySet, otherwise
    from ``<app>/models/materialized_views/sql_files/<classname lower>.sql``.
    """

    class Meta:
        abstract = True
        managed = False

    @classmethod
    def view_definition(cls) -> tuple[str, tuple[Any, ...]]:
        """The view's SELECT and its parameters, exactly as they will be sent to PostgreSQL."""
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
        log = refresh_view(cls, using=using, concurrently=concurrently, trigger="manual")
        assert not isinstance(log, Skipped)  # it waited for the lock and ignores marks
        return log
