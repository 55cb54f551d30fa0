"""Shapes that real projects' code took when they switched to live_matview (issue 11)."""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from live_matview import RefreshError
from live_matview.models import MaterializedViewRefreshLog
from live_matview.processor import forget_caches
from live_matview.views import graph
from tests.helpers import assert_fresh
from tests.testapp.models import Customer, CustomerTotals, Order, OrderTagCounts


@pytest.fixture
def broken_view(monkeypatch):
    """OrderTagCounts as a project had it: its view exists in the database, but the deployed
    code's get_query_from_queryset() raises NameError (a missing import)."""

    def get_query_from_queryset():
        return Tagg.objects.values("id")  # noqa: F821  (the bug under test)

    monkeypatch.setattr(
        OrderTagCounts, "get_query_from_queryset", staticmethod(get_query_from_queryset)
    )
    monkeypatch.setattr(graph, "_reported", set())
    forget_caches()
    yield OrderTagCounts
    forget_caches()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("broken_view")
def test_one_broken_view_leaves_the_others_working(caplog):
    caplog.set_level(logging.INFO, logger="live_matview")
    customer = Customer.objects.create(name="Ada")
    with transaction.atomic():
        Order.objects.create(customer=customer, amount=30)
    Order.objects.create(customer=customer, amount=12)  # autocommit: another path
    assert_fresh(CustomerTotals)
    log = CustomerTotals.refresh()
    assert not log.failed

    # The writers' statements never logged an error of their own...
    assert not [r for r in caplog.records if "could not record a write" in r.getMessage()]
    # ...and the broken view was reported once, naming it and the fix, however many graphs
    # and source maps this process built since.
    forget_caches()
    CustomerTotals.refresh()
    reports = [r for r in caplog.records if r.name == "live_matview.views"]
    assert len(reports) == 1
    message = reports[0].getMessage()
    assert "testapp.OrderTagCounts cannot be built" in message
    assert "NameError: name 'Tagg' is not defined" in message
    assert "Fix the method" in message


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("broken_view")
def test_refreshing_the_broken_view_fails_and_its_log_row_says_why():
    with pytest.raises(RefreshError, match="OrderTagCounts cannot be built") as excinfo:
        OrderTagCounts.refresh()
    row = MaterializedViewRefreshLog.objects.get(pk=excinfo.value.log_id)
    assert row.view_name == "testapp_ordertagcounts"
    assert row.failed
    assert "NameError: name 'Tagg' is not defined" in row.error
    assert row.concurrently is None  # nothing was run


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("broken_view")
def test_a_write_that_dirties_the_broken_view_still_commits():
    """OrderTagCounts reads Order: its on-commit refresh fails, logged; the writer goes on."""
    customer = Customer.objects.create(name="Ada")
    with transaction.atomic():
        order = Order.objects.create(customer=customer, amount=5)
    assert Order.objects.filter(pk=order.pk).exists()
    failed = MaterializedViewRefreshLog.objects.filter(
        view_name="testapp_ordertagcounts", failed=True
    )
    assert failed.exists()
    assert_fresh(CustomerTotals)
