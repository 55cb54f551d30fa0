"""Views in a second database: ``--database`` / ``using=``, and routers respected."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test.utils import override_settings

from live_matview.models import ManagedView, MaterializedViewRefreshLog
from live_matview.views.registry import view_models
from tests.testapp.models import Customer, CustomerTotals, Order

pytestmark = pytest.mark.django_db(databases=["default", "other"], transaction=True)


class NoViewsOnOther:
    """Keeps the view models (not the tables) out of the "other" database."""

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        model = hints.get("model")
        if db == "other" and model is not None and model in view_models():
            return False
        return None


def run(**options) -> str:
    out = io.StringIO()
    call_command("migrate_with_views", stdout=out, **options)
    return out.getvalue()


def test_views_live_and_refresh_in_the_database_written():
    from django.db import connections

    # The test database's own migrate made the views (LIVE_MATVIEW_SYNC_ON_MIGRATE).
    with connections["other"].cursor() as cursor:
        cursor.execute("DROP MATERIALIZED VIEW testapp_bigspenders")
        cursor.execute("DROP MATERIALIZED VIEW testapp_customertotals")
    assert "create   testapp_customertotals" in run(database="other")
    customer = Customer.objects.using("other").create(name="Ada")
    Order.objects.using("other").create(customer=customer, amount=5)
    # Refreshed on commit, in "other" only, and logged there.
    assert list(CustomerTotals.objects.using("other").values_list("orders", flat=True)) == [1]
    assert CustomerTotals.objects.using("default").count() == 0
    assert MaterializedViewRefreshLog.objects.using("other").filter(trigger="on_commit").exists()
    assert not MaterializedViewRefreshLog.objects.using("default").filter(database="other").exists()
    log = CustomerTotals.refresh(using="other")
    assert log.database == "other"
    assert MaterializedViewRefreshLog.objects.using("other").filter(pk=log.pk).exists()
    assert "No changes." in run(database="other")


def test_routers_decide_where_views_go():
    run(database="other")
    assert ManagedView.objects.using("other").exists()
    with override_settings(DATABASE_ROUTERS=[NoViewsOnOther()]):
        output = run(database="other")
    assert "drop     testapp_customertotals: its model is gone" in output
    assert not ManagedView.objects.using("other").exists()
    assert ManagedView.objects.using("default").filter(view_name="testapp_customertotals").exists()
