"""Code written for django-materialized-view 0.1.6.2 keeps working after the switch."""

from __future__ import annotations

import inspect

import pytest
from django.core.management import get_commands

from tests.helpers import view_oids
from tests.testapp.models import CustomerTotals, SkuPrefixCounts


def test_old_module_paths_import():
    from live_matview.base_model import DBViewsRegistry, MaterializedViewModel
    from live_matview.models import MaterializedViewRefreshLog
    from live_matview.processor import MaterializedViewsProcessor

    assert issubclass(CustomerTotals, MaterializedViewModel)
    assert DBViewsRegistry["testapp_customertotals"] is CustomerTotals
    assert callable(MaterializedViewsProcessor().process_materialized_views)
    field_names = {field.name for field in MaterializedViewRefreshLog._meta.get_fields()}
    assert {"updated_at", "duration", "failed", "view_name"} <= field_names
    assert get_commands()["migrate_with_views"] == "live_matview"


def test_top_level_name_is_the_same_class():
    import live_matview
    from live_matview.base_model import MaterializedViewModel

    assert live_matview.MaterializedViewModel is MaterializedViewModel


def test_refresh_signature():
    parameters = inspect.signature(CustomerTotals.refresh).parameters
    assert list(parameters) == ["using", "concurrently"]
    assert parameters["using"].default is None
    assert parameters["concurrently"].default is None


def test_view_definition_returns_sql_and_params():
    sql, params = SkuPrefixCounts.view_definition()
    assert sql.lstrip().upper().startswith("SELECT")
    assert "%s" in sql
    assert "A\\%%" in params  # the LIKE pattern travels as a parameter


def test_get_tablename():
    assert CustomerTotals.get_tablename() == "testapp_customertotals"


@pytest.mark.django_db
def test_old_pytest_fixture_created_the_views():
    """tests/conftest.py overrides django_db_setup exactly as the old README says."""
    from live_matview.views.registry import view_models

    assert all(view_oids(view_models()).values())
