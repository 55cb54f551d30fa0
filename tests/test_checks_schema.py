"""The checks that catch at start-up what the sync would refuse (E020 to E023), each
through ``call_command("check")`` as a developer meets it."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import models
from django.db.models import F

from live_matview import MaterializedViewModel, checks
from tests.test_checks import check_output, isolated, queryset_view  # noqa: F401  (isolated: a fixture)
from tests.testapp.models import Customer, Order


def passes(monkeypatch, *views) -> str:
    monkeypatch.setattr(checks, "view_models", lambda: list(views))
    out = io.StringIO()
    call_command("check", stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_e020_sql_file_with_two_statements(sql_file, monkeypatch):
    from tests.testapp.models import ItemSales

    sql_file.write_text("SELECT sku, 1 AS quantity FROM testapp_item; DROP TABLE testapp_item")
    output = check_output(monkeypatch, ItemSales)
    assert "live_matview.E020" in output
    assert f"testapp.ItemSales: the SQL file {sql_file} is not one SELECT" in output
    assert "another begins with 'DROP'" in output


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize(
    ("db_table", "problem"),
    [("sales%2024", "contains '%'"), ('it"s', "contains '\"'"), ('"a%b"', "contains '%'")],
)
def test_e021_db_table_the_orm_cannot_query(monkeypatch, db_table, problem):
    """Rejected, not supported: Django's own ``quote_name`` wraps a name in quotes without
    escaping any inside, and its cursor %-formats every query with parameters."""
    view = queryset_view("OddName", Meta=type("Meta", (), {"db_table": db_table}))
    output = check_output(monkeypatch, view)
    assert "live_matview.E021" in output
    assert problem in output
    assert "double the quote" in output


@pytest.mark.usefixtures("isolated")
def test_e021_quoted_form_with_a_doubled_quote_is_fine(monkeypatch):
    view = queryset_view("QuotedName", Meta=type("Meta", (), {"db_table": '"it""s"'}))
    assert "E021" not in passes(monkeypatch, view)


@pytest.mark.usefixtures("isolated")
def test_e022_pkey_index_without_a_primary_key_field(monkeypatch):
    """Issue 11.9: the sync used to say the query lacks ``id``."""
    view = type(
        "NoPk",
        (MaterializedViewModel,),
        {
            "__module__": "tests.testapp.models",
            "create_pkey_index": True,
            "customer_id": models.BigIntegerField(),
            "get_query_from_queryset": staticmethod(
                lambda: Customer.objects.values(customer_id=F("id"))
            ),
        },
    )
    output = check_output(monkeypatch, view)
    assert "live_matview.E022" in output
    assert "testapp.NoPk has no field with primary_key=True" in output
    assert "create_pkey_index = True would index it" in output
    assert "HINT: Mark the field that identifies a row with primary_key=True" in output


@pytest.mark.usefixtures("isolated")
def test_e022_not_raised_when_the_query_returns_id(monkeypatch):
    """django-materialized-view's views often rely on Django's ``id``: they keep working."""
    view = type(
        "ImplicitId",
        (MaterializedViewModel,),
        {
            "__module__": "tests.testapp.models",
            "create_pkey_index": True,
            "get_query_from_queryset": staticmethod(lambda: Order.objects.values("id")),
        },
    )
    assert "E022" not in passes(monkeypatch, view)


@pytest.mark.usefixtures("isolated")
def test_e023_refresh_on_cycle_through_views(monkeypatch):
    """Issue 10.5: A lists B, B lists A; each refresh would mark the other forever."""
    first = queryset_view("ListsB", refresh_on=[Order])
    second = queryset_view("ListsA", refresh_on=[first])
    first.refresh_on = [Order, second]
    output = check_output(monkeypatch, first, second)
    assert "live_matview.E023" in output
    assert "testapp.ListsA -> testapp.ListsB -> testapp.ListsA" in output
    assert "E003" not in output


@pytest.mark.usefixtures("isolated")
def test_e023_cycle_of_a_read_and_a_refresh_on_entry(monkeypatch):
    parent = queryset_view("Parent", refresh_on=[Order])
    child = queryset_view(
        "Child", get_query_from_queryset=staticmethod(lambda: parent.objects.values("id"))
    )
    parent.refresh_on = [Order, child]
    output = check_output(monkeypatch, parent, child)
    assert "live_matview.E023" in output
    assert "testapp.Child -> testapp.Parent -> testapp.Child" in output


@pytest.mark.usefixtures("isolated")
def test_refresh_on_naming_a_parent_view_is_no_cycle(monkeypatch):
    parent = queryset_view("Base", refresh_on=[Order])
    child = queryset_view(
        "OnTop",
        refresh_on=[parent],
        get_query_from_queryset=staticmethod(lambda: parent.objects.values("id")),
    )
    assert "E023" not in passes(monkeypatch, parent, child)
