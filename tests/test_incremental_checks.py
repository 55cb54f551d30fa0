"""Each system check of incremental declarations, through ``call_command("check")``."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import models
from django.test.utils import isolate_apps, override_settings

from live_matview import MaterializedViewModel, checks
from tests.incrementalapp.models import Client, ClientTotals, Sale, SaleLine


def check_output(monkeypatch, *views) -> str:
    monkeypatch.setattr(checks, "view_models", lambda: list(views))
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", fail_level="WARNING")
    return str(excinfo.value)


@pytest.fixture
def isolated():
    with isolate_apps("tests.incrementalapp"):
        yield


def keyed_view(name: str, refresh_on, key=None, **attrs):
    """A valid incremental view keyed by client; tests add the one mistake they check."""
    body = {
        "__module__": "tests.incrementalapp.models",
        "client": key
        or models.OneToOneField(
            Client, primary_key=True, db_column="client_id", on_delete=models.DO_NOTHING
        ),
        "refresh_on": refresh_on,
        "get_query_from_queryset": staticmethod(lambda: Sale.objects.values("client_id")),
        **attrs,
    }
    return type(name, (MaterializedViewModel,), body)


@pytest.mark.usefixtures("isolated")
def test_a_valid_declaration_passes(monkeypatch):
    view = keyed_view("Fine", {Sale: "client", SaleLine: "sale__client", Client: "pk"})
    monkeypatch.setattr(checks, "view_models", lambda: [view])
    call_command("check", fail_level="WARNING")


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize(
    ("lookup", "says"),
    [
        ("customer", "has no field 'customer'"),
        ("amount__client", "is not a relation"),
        ("sale__lines", "reverse or many-to-many"),
    ],
)
def test_e101_a_lookup_that_does_not_resolve(monkeypatch, lookup, says):
    source = Sale if lookup.startswith(("customer", "amount")) else SaleLine
    output = check_output(monkeypatch, keyed_view("Broken", {source: lookup}))
    assert "live_matview.E101" in output
    assert says in output


@pytest.mark.usefixtures("isolated")
def test_e102_a_lookup_to_a_value_of_another_type(monkeypatch):
    output = check_output(monkeypatch, keyed_view("WrongType", {SaleLine: "sku"}))
    assert "live_matview.E102" in output
    assert "CharField, which cannot be compared" in output


@pytest.mark.usefixtures("isolated")
def test_e103_a_view_without_a_declared_primary_key(monkeypatch):
    view = type(
        "NoKey",
        (MaterializedViewModel,),
        {
            "__module__": "tests.incrementalapp.models",
            "total": models.IntegerField(),
            "refresh_on": {Sale: "client"},
        },
    )
    output = check_output(monkeypatch, view)
    assert "live_matview.E103" in output


@pytest.mark.usefixtures("isolated")
def test_e104_a_view_as_a_dict_key(monkeypatch):
    output = check_output(monkeypatch, keyed_view("OnAView", {ClientTotals: "client"}))
    assert "live_matview.E104" in output


@pytest.mark.usefixtures("isolated")
def test_w101_signals_mode_refreshes_fully(monkeypatch):
    with override_settings(LIVE_MATVIEW_CAPTURE="signals"):
        output = check_output(monkeypatch, keyed_view("Signals", {Sale: "client"}))
    assert "live_matview.W101" in output
    assert "refreshed fully" in output


@pytest.mark.usefixtures("isolated")
def test_w102_a_lookup_through_an_undeclared_model(monkeypatch):
    output = check_output(monkeypatch, keyed_view("Through", {SaleLine: "sale__client"}))
    assert "live_matview.W102" in output
    assert "incrementalapp.Sale is not in refresh_on" in output
