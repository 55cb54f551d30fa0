"""Creating the schema, and telling the orchestrator what this process runs."""

from __future__ import annotations

import sys
from typing import Any

import django
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection


def info() -> dict[str, Any]:
    """Versions and modes, recorded in the JSON so results can be compared later."""
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    details: dict[str, Any] = {
        "variant": settings.VARIANT,
        "python": sys.version.split()[0],
        "django": django.get_version(),
        "driver": "psycopg 3" if is_psycopg3 else "psycopg2",
    }
    if apps.is_installed("live_matview"):
        import live_matview

        details["live_matview"] = live_matview.__version__
        details["capture"] = settings.LIVE_MATVIEW_CAPTURE
    if apps.is_installed("django_materialized_view"):
        from importlib.metadata import version

        details["django_materialized_view"] = version("django-materialized-view")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        details["server_version"] = cursor.fetchone()[0]
    return details


def setup_schema() -> list[str]:
    """Tables (``--run-syncdb``: the shop app has no migrations), then the views and
    their capture triggers, as ``migrate_with_views`` would make them."""
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    if not apps.is_installed("live_matview"):
        return []
    from live_matview.testing import create_views

    plan = create_views()
    return list(plan.describe())
