"""What a new user meets in the first hour, following only the docs (issue 11)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from live_matview.processor import forget_caches, sync_views
from tests.helpers import execute
from tests.testapp.models import Customer, Item, ItemSales, Order

pytestmark = pytest.mark.django_db


@pytest.fixture
def created_item_sales():
    """ItemSales as migrate_with_views leaves it on a new project: created with its data,
    never refreshed since."""
    customer = Customer.objects.create(name="Ada")
    order = Order.objects.create(customer=customer, amount=5)
    Item.objects.bulk_create(
        [Item(order=order, sku="A1"), Item(order=order, sku="B2"), Item(order=order, sku="A1")]
    )
    execute(f"DROP MATERIALIZED VIEW {ItemSales._meta.db_table}")
    forget_caches()
    sync_views()
    yield ItemSales
    forget_caches()


@pytest.mark.usefixtures("created_item_sales")
def test_status_right_after_creation_shows_rows_and_when():
    out = io.StringIO()
    call_command("live_matview_status", stdout=out)
    row = next(line for line in out.getvalue().splitlines() if line.startswith("testapp_itemsales"))
    cells = row.split()
    assert cells[1] == "2"  # counted: PostgreSQL has no estimate before ANALYZE
    assert "created with data" in row
    assert "never" not in row
    assert "?" not in row

    out = io.StringIO()
    call_command("live_matview_status", "--json", stdout=out)
    status = next(s for s in json.loads(out.getvalue()) if s["view"] == "testapp_itemsales")
    assert status["rows"] == 2
    assert status["rows_exact"] is True
    assert status["created_at"] is not None
    assert status["last_refresh"] is None


@pytest.mark.usefixtures("created_item_sales")
def test_status_after_a_refresh_shows_the_refresh_instead():
    ItemSales.refresh()
    out = io.StringIO()
    call_command("live_matview_status", "--json", stdout=out)
    status = next(s for s in json.loads(out.getvalue()) if s["view"] == "testapp_itemsales")
    assert status["created_at"] is None
    assert status["last_refresh"] is not None


def test_refresh_views_prints_a_summary_when_not_on_a_terminal():
    out = io.StringIO()  # not a terminal, as in CI logs: no progress lines
    call_command("refresh_views", "testapp.CustomerTotals", "testapp.ItemSales", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Refreshed 2 of 2 materialized views (1 concurrently, 1 plain) in ")


def test_refresh_views_is_silent_at_verbosity_0():
    out = io.StringIO()
    call_command("refresh_views", "testapp.ItemSales", verbosity=0, stdout=out)
    assert out.getvalue() == ""


def test_refresh_views_dirty_with_nothing_dirty_says_so():
    execute("DELETE FROM live_matview_dirtymark")
    out = io.StringIO()
    call_command("refresh_views", "--dirty", stdout=out)
    assert out.getvalue().strip() == "No materialized views to refresh."


# --- A read-only admin for view models (item 10) ----------------------------------------


@pytest.fixture
def view_admin():
    from django.contrib.admin import AdminSite

    from live_matview.admin import MaterializedViewAdmin
    from tests.testapp.models import CustomerTotals

    return MaterializedViewAdmin(CustomerTotals, AdminSite())


def admin_request(user):
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    request = RequestFactory().post("/")
    request.user = user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    return request


def test_view_admin_is_read_only_with_a_refresh_action(view_admin, admin_user):
    from django.contrib.messages import get_messages

    from live_matview.models import MaterializedViewRefreshLog
    from tests.testapp.models import CustomerTotals

    request = admin_request(admin_user)
    assert not view_admin.has_add_permission(request)
    assert not view_admin.has_change_permission(request)
    assert not view_admin.has_delete_permission(request)
    assert view_admin.has_view_permission(request)
    assert set(view_admin.get_actions(request)) == {"refresh_now"}  # no "delete selected"
    assert set(view_admin.get_readonly_fields(request)) == {"customer", "orders", "total"}

    view_admin.refresh_now(request, CustomerTotals.objects.all())
    log = MaterializedViewRefreshLog.objects.get()
    assert (log.view_name, log.trigger, log.failed) == ("testapp_customertotals", "admin", False)
    assert [str(m) for m in get_messages(request)] == [
        "Refreshed 1 view: testapp_customertotals concurrently."
    ]


def test_view_admin_refresh_needs_the_change_permission_on_managed_views(view_admin):
    from django.contrib.auth.models import Permission, User

    staff = User.objects.create_user("viewer", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_customertotals"))
    assert view_admin.has_view_permission(admin_request(staff))
    assert view_admin.get_actions(admin_request(staff)) == {}
    staff.user_permissions.add(Permission.objects.get(codename="change_managedview"))
    staff = User.objects.get(pk=staff.pk)  # permissions are cached per user object
    assert set(view_admin.get_actions(admin_request(staff))) == {"refresh_now"}
