"""Each system check, through ``call_command("check")`` as a developer meets it."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import models
from django.test.utils import isolate_apps, modify_settings, override_settings

from live_matview import MaterializedViewModel, checks
from tests.testapp.models import Customer, Order


def check_output(monkeypatch, *views) -> str:
    monkeypatch.setattr(checks, "view_models", lambda: list(views))
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check")
    return str(excinfo.value)


@pytest.fixture
def isolated():
    with isolate_apps("tests.testapp"):
        yield


def queryset_view(name: str, **attrs):
    """A valid view class; tests add the one mistake they check."""
    body = {
        "__module__": "tests.testapp.models",
        "id": models.BigIntegerField(primary_key=True),
        "get_query_from_queryset": staticmethod(lambda: Order.objects.values("id")),
        **attrs,
    }
    return type(name, (MaterializedViewModel,), body)


def test_the_test_project_passes_every_check():
    call_command("check")


def test_e001_database_that_is_not_postgresql():
    databases = {
        **settings.DATABASES,
        "legacy": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }
    with (
        pytest.warns(UserWarning, match="DATABASES"),
        override_settings(DATABASES=databases),
        pytest.raises(SystemCheckError) as excinfo,
    ):
        call_command("check")
    assert "live_matview.E001" in str(excinfo.value)
    assert "'legacy'" in str(excinfo.value)


@pytest.mark.usefixtures("isolated")
def test_e002_refresh_on_entry_that_is_not_a_model(monkeypatch):
    view = queryset_view("BadSources", refresh_on=[Order, "testapp.Nope", 42])
    output = check_output(monkeypatch, view)
    assert output.count("live_matview.E002") == 2
    assert "'testapp.Nope' is not an installed model" in output


@pytest.mark.usefixtures("isolated")
def test_e002_refresh_on_of_the_wrong_type(monkeypatch):
    assert "live_matview.E002" in check_output(
        monkeypatch, queryset_view("BadType", refresh_on="testapp.Order")
    )


@pytest.mark.usefixtures("isolated")
def test_e003_views_reading_each_other(monkeypatch):
    holder = {}
    first = queryset_view(
        "CycleA",
        get_query_from_queryset=staticmethod(lambda: holder["b"].objects.values("id")),
    )
    holder["b"] = queryset_view(
        "CycleB", get_query_from_queryset=staticmethod(lambda: first.objects.values("id"))
    )
    output = check_output(monkeypatch, first, holder["b"])
    assert "live_matview.E003" in output
    assert "testapp.CycleA -> testapp.CycleB -> testapp.CycleA" in output


@pytest.mark.usefixtures("isolated")
def test_e004_missing_sql_file_prints_the_path(monkeypatch):
    view = type(
        "NoSqlFile",
        (MaterializedViewModel,),
        {"__module__": "tests.testapp.models", "id": models.BigIntegerField(primary_key=True)},
    )
    output = check_output(monkeypatch, view)
    assert "live_matview.E004" in output
    assert "testapp/models/materialized_views/sql_files/nosqlfile.sql" in output


@pytest.mark.usefixtures("isolated")
def test_e005_queryset_method_that_is_not_static(monkeypatch):
    view = queryset_view("PlainMethod", get_query_from_queryset=lambda self: None)
    assert "live_matview.E005" in check_output(monkeypatch, view)


@pytest.mark.usefixtures("isolated")
def test_e006_queryset_method_returning_something_else(monkeypatch):
    view = queryset_view("ReturnsSql", get_query_from_queryset=staticmethod(lambda: "SELECT 1"))
    output = check_output(monkeypatch, view)
    assert "live_matview.E006" in output
    assert "returned str" in output


@pytest.mark.usefixtures("isolated")
def test_e006_queryset_method_that_raises(monkeypatch):
    def broken():
        raise KeyError("oops")

    view = queryset_view("Raises", get_query_from_queryset=staticmethod(broken))
    assert "live_matview.E006" in check_output(monkeypatch, view)


@pytest.mark.usefixtures("isolated")
def test_e007_managed_view(monkeypatch):
    meta = type("Meta", (), {"managed": True})
    view = queryset_view("Managed", Meta=meta)
    assert "live_matview.E007" in check_output(monkeypatch, view)


def test_meta_without_managed_stays_unmanaged():
    with isolate_apps("tests.testapp"):
        view = queryset_view("OwnMeta", Meta=type("Meta", (), {"ordering": ["id"]}))
    assert view._meta.managed is False


@pytest.mark.usefixtures("isolated")
def test_e008_source_in_an_installed_package(monkeypatch):
    view = queryset_view("OnUsers", refresh_on=["auth.User", Customer])
    output = check_output(monkeypatch, view)
    assert output.count("live_matview.E008") == 1
    assert "proxy model of auth.User" in output


@pytest.mark.usefixtures("isolated")
def test_e008_not_raised_in_signals_mode(monkeypatch):
    view = queryset_view("OnUsersSignals", refresh_on=["auth.User"])
    monkeypatch.setattr(checks, "view_models", lambda: [view])
    with override_settings(LIVE_MATVIEW_CAPTURE="signals"):
        call_command("check")


def test_e009_pgtrigger_not_installed():
    with (
        modify_settings(INSTALLED_APPS={"remove": ["pgtrigger"]}),
        pytest.raises(SystemCheckError) as excinfo,
    ):
        call_command("check")
    assert "live_matview.E009" in str(excinfo.value)


@pytest.mark.usefixtures("isolated")
def test_e010_concurrently_required_without_unique_index(monkeypatch):
    view = queryset_view("NeedsIndex", refresh_concurrently=True)
    assert "live_matview.E010" in check_output(monkeypatch, view)
    monkeypatch.undo()
    fine = queryset_view("HasIndex", refresh_concurrently=True, create_pkey_index=True)
    monkeypatch.setattr(checks, "view_models", lambda: [fine])
    call_command("check")


@pytest.mark.parametrize(
    "setting", ["LIVE_MATVIEW_CAPTURE", "LIVE_MATVIEW_REFRESH_MODE", "LIVE_MATVIEW_ASYNC"]
)
def test_e011_bad_setting_value(setting):
    with override_settings(**{setting: "sometimes"}), pytest.raises(SystemCheckError) as excinfo:
        call_command("check")
    assert "live_matview.E011" in str(excinfo.value)
    assert setting in str(excinfo.value)


@pytest.mark.usefixtures("isolated")
def test_e012_bad_refresh_mode_on_a_view(monkeypatch):
    view = queryset_view("BadMode", refresh_mode="hourly")
    assert "live_matview.E012" in check_output(monkeypatch, view)


@pytest.mark.usefixtures("isolated")
def test_e013_db_table_that_cannot_be_parsed(monkeypatch):
    view = queryset_view("BadTable", Meta=type("Meta", (), {"db_table": '"a"."b"."c"'}))
    assert "live_matview.E013" in check_output(monkeypatch, view)


@pytest.mark.usefixtures("isolated")
def test_w001_view_reading_a_table_its_sources_miss(monkeypatch):
    import io

    view = queryset_view(
        "NamesToo",
        refresh_on=[Order],
        get_query_from_queryset=staticmethod(lambda: Order.objects.values("id", "customer__name")),
    )
    monkeypatch.setattr(checks, "view_models", lambda: [view])
    out, err = io.StringIO(), io.StringIO()
    call_command("check", stdout=out, stderr=err)  # a warning: start-up goes on
    report = out.getvalue() + err.getvalue()
    assert "live_matview.W001" in report
    assert "testapp_customer (testapp.Customer)" in report
    assert 'Add "testapp.Customer" to its refresh_on' in report
