from __future__ import annotations

from pathlib import Path

import pytest


def pytest_report_header(config):
    from django.conf import settings
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    database = settings.DATABASES["default"]
    driver = "psycopg 3" if is_psycopg3 else "psycopg2"
    return f"live_matview: {driver}, PostgreSQL at {database.get('HOST') or 'localhost'}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """The fixture django-materialized-view's README tells users to write, unchanged but
    for the package name: it must keep working."""
    with django_db_blocker.unblock():
        from live_matview.processor import MaterializedViewsProcessor

        proces = MaterializedViewsProcessor()
        proces.process_materialized_views()


@pytest.fixture
def sql_file():
    """Edit ItemSales' SQL file for one test and put the original back afterwards."""
    path = Path(__file__).parent / "testapp/models/materialized_views/sql_files/itemsales.sql"
    original = path.read_text()
    yield path
    path.write_text(original)


@pytest.fixture(autouse=True)
def _no_background_leftovers():
    """Retries and async refreshes queued by one test must not run during the next."""
    yield
    from live_matview import background

    background.clear()
