"""Helpers for testing code that uses materialized views.

``create_views()`` builds the views in the test database; the pytest plugin
(``live_matview.testing.pytest_plugin``, loaded automatically when pytest runs) offers the
same as the ``live_matview_views`` fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import DEFAULT_DB_ALIAS

if TYPE_CHECKING:
    from ..planning import SyncPlan

# Imports of models happen inside the functions: pytest imports this package (through
# the plugin) before Django is set up.

__all__ = ["create_views"]


def create_views(using: str = DEFAULT_DB_ALIAS) -> SyncPlan:
    """Create (or bring up to date) every materialized view in database ``using``."""
    from ..processor import sync_views

    return sync_views(using)
