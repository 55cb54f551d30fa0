"""pytest fixtures, registered through the ``pytest11`` entry point.

Nothing here imports Django models at import time: pytest loads plugins before
Django is set up.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def live_matview_views(django_db_setup: Any, django_db_blocker: Any) -> None:
    """Create the materialized views in the test database once per session."""
    from . import create_views

    with django_db_blocker.unblock():
        create_views()
