"""The admin: the read-only refresh log, the view list and its "Refresh now" action.

The action runs inside the test's transaction (no commit needed: it refreshes by itself,
not on commit), so these tests stay on the fast ``django_db``.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse

from live_matview import DependencyCycleError, conf
from live_matview import admin as live_matview_admin
from live_matview.models import DirtyMark, ManagedView, MaterializedViewRefreshLog
from live_matview.processor import forget_caches
from live_matview.schema import ddl
from live_matview.views.registry import view_models
from tests.helpers import raw_connection
from tests.testapp.models import BigSpenders, Customer, CustomerTotals, Item, ItemSales, Order

pytestmark = pytest.mark.django_db

LOG_LIST = reverse("admin:live_matview_materializedviewrefreshlog_changelist")
VIEW_LIST = reverse("admin:live_matview_managedview_changelist")


@pytest.fixture
def admin_client(client, django_user_model):
    """pytest-django's, without a password: hashing one costs half a second per test."""
    client.force_login(django_user_model.objects.create_superuser("admin", None, None))
    return client


@pytest.fixture(autouse=True)
def managed_views():
    """A row per view, as ``migrate_with_views`` leaves them (a flush may have emptied them)."""
    return {
        model: ManagedView.objects.get_or_create(
            view_name=model._meta.db_table,
            defaults={"app_label": model._meta.app_label, "model_name": model._meta.model_name},
        )[0]
        for model in view_models()
    }


@pytest.fixture
def logs():
    rows = [
        ("testapp_customertotals", "on_commit", False, True, timedelta(milliseconds=12), ""),
        ("testapp_customertotals", "admin", False, None, None, ""),
        (
            "testapp_itemsales",
            "command",
            True,
            False,
            timedelta(seconds=2.5),
            "integer out of range " + "x" * 100 + "\nCONTEXT: second line",
        ),
    ]
    return [
        MaterializedViewRefreshLog.objects.create(
            view_name=view,
            trigger=trigger,
            failed=failed,
            concurrently=concurrently,
            duration=duration,
            error=error,
        )
        for view, trigger, failed, concurrently, duration, error in rows
    ]


def cells(response, column: str) -> list[str]:
    """The text of one column of the changelist, top to bottom."""
    pattern = rf'<td class="field-{column}[^"]*">(.*?)</td>'
    return re.findall(pattern, response.content.decode(), flags=re.DOTALL)


def shown(response) -> list:
    return list(response.context["cl"].result_list)


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def refresh_now(client, *views: ManagedView):
    return client.post(
        VIEW_LIST,
        {"action": "refresh_now", "_selected_action": [view.pk for view in views], "index": 0},
        follow=True,
    )


# -- the refresh log -----------------------------------------------------------------------


def test_staff_sees_the_refresh_log(admin_client, logs):
    response = admin_client.get(LOG_LIST)
    assert response.status_code == 200
    assert shown(response) == logs[::-1]  # newest first
    assert cells(response, "took") == ["2.50 s", "-", "12 ms"]
    assert cells(response, "outcome") == ["failed", "ok", "ok, concurrently"]
    error = cells(response, "short_error")[0]
    assert error.startswith("integer out of range xxx")
    assert error.endswith("…")
    assert len(error) == 48  # only the first line, shortened to fit 1280 px
    page = response.content.decode()
    assert "Materialized view refreshes" in page  # the title, as in the index
    assert "?updated_at__year=" in page  # the date hierarchy


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"failed__exact": "1"}, [2]),
        ({"failed__exact": "0"}, [1, 0]),
        ({"trigger__exact": "admin"}, [1]),
        ({"view_name": "testapp_itemsales"}, [2]),
        ({"q": "out of range"}, [2]),
        ({"q": "customertotals"}, [1, 0]),
    ],
)
def test_the_refresh_log_filters(admin_client, logs, query, expected):
    response = admin_client.get(LOG_LIST, query)
    assert response.status_code == 200
    assert shown(response) == [logs[i] for i in expected]


def test_the_refresh_log_is_read_only(admin_client, logs):
    log = logs[0]
    assert admin_client.get(LOG_LIST).context["action_form"] is None  # no "delete selected"
    add = reverse("admin:live_matview_materializedviewrefreshlog_add")
    delete = reverse("admin:live_matview_materializedviewrefreshlog_delete", args=[log.pk])
    change = reverse("admin:live_matview_materializedviewrefreshlog_change", args=[log.pk])
    assert admin_client.get(add).status_code == 403
    assert admin_client.get(delete).status_code == 403
    response = admin_client.get(change)
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert 'name="_save"' not in response.content.decode()
    assert admin_client.post(change, {"view_name": "changed"}).status_code == 403
    log.refresh_from_db()
    assert log.view_name == "testapp_customertotals"


# -- the view list -------------------------------------------------------------------------


def test_staff_sees_the_views_with_their_state(admin_client, managed_views):
    DirtyMark.objects.bulk_create(
        [DirtyMark(view_name="testapp_itemsales", source="testapp_item")] * 3
        + [DirtyMark(view_name="testapp_bigspenders", source="testapp_customertotals")]
    )
    failing = managed_views[ItemSales]
    failing.consecutive_failures = 2
    failing.save()
    response = admin_client.get(VIEW_LIST)
    assert response.status_code == 200
    rows = {view.view_name: view for view in shown(response)}
    assert set(rows) == {model._meta.db_table for model in view_models()}
    assert rows["testapp_itemsales"].marks == 3
    assert rows["testapp_bigspenders"].marks == 1
    assert rows["testapp_customertotals"].marks == 0
    page = response.content.decode()
    assert "testapp.itemsales" in page
    assert '<option value="refresh_now">Refresh now</option>' in page


def test_pending_marks_cost_no_query_per_row(admin_client):
    DirtyMark.objects.create(view_name="testapp_itemsales", source="testapp_item")
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(VIEW_LIST)
    mark_queries = [q for q in queries if "live_matview_dirtymark" in q["sql"]]
    assert 1 <= len(mark_queries) <= 2  # the page, and perhaps its count; not one per view


def test_pending_marks_sort(admin_client):
    DirtyMark.objects.create(view_name="testapp_itemsales", source="testapp_item")
    response = admin_client.get(VIEW_LIST, {"o": "-6"})
    assert shown(response)[0].view_name == "testapp_itemsales"


def test_views_are_not_edited_added_or_deleted(admin_client, managed_views):
    view = managed_views[CustomerTotals]
    change = reverse("admin:live_matview_managedview_change", args=[view.pk])
    DirtyMark.objects.create(view_name="testapp_customertotals", source="testapp_order")
    response = admin_client.get(change)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="_save"' not in page
    assert '<div class="readonly">1</div>' in page  # pending marks
    assert f'<a href="{LOG_LIST}?view_name=testapp_customertotals">' in page
    assert admin_client.post(change, {"view_name": "changed"}).status_code == 403
    assert admin_client.get(reverse("admin:live_matview_managedview_add")).status_code == 403
    delete = reverse("admin:live_matview_managedview_delete", args=[view.pk])
    assert admin_client.get(delete).status_code == 403
    page = admin_client.get(VIEW_LIST).content.decode()
    assert "delete_selected" not in page


# -- "Refresh now" -------------------------------------------------------------------------


def test_refresh_now_refreshes_and_logs(admin_client, managed_views):
    Order.objects.create(customer=Customer.objects.create(name="Ada"), amount=120)
    before = MaterializedViewRefreshLog.objects.count()
    response = refresh_now(admin_client, managed_views[CustomerTotals])
    assert response.status_code == 200
    assert texts(response) == ["Refreshed 1 view: testapp_customertotals concurrently."]
    log = MaterializedViewRefreshLog.objects.get()
    assert before == 0
    assert (log.view_name, log.trigger, log.failed) == ("testapp_customertotals", "admin", False)
    assert CustomerTotals.objects.get().total == 120
    assert "testapp_customertotals concurrently" in response.content.decode()


def test_refresh_now_goes_parents_first(admin_client, managed_views):
    selected = [managed_views[BigSpenders], managed_views[ItemSales], managed_views[CustomerTotals]]
    response = refresh_now(admin_client, *selected)
    assert texts(response) == [
        "Refreshed 3 views: testapp_customertotals concurrently, "
        "testapp_bigspenders plainly, testapp_itemsales plainly."
    ]
    refreshed = MaterializedViewRefreshLog.objects.order_by("id").values_list(
        "view_name", flat=True
    )
    assert list(refreshed) == ["testapp_customertotals", "testapp_bigspenders", "testapp_itemsales"]


def test_a_failed_refresh_is_an_error_message(admin_client, managed_views):
    order = Order.objects.create(customer=Customer.objects.create(name="Ada"), amount=1)
    Item.objects.create(order=order, sku="A", quantity=2_000_000_000)
    Item.objects.create(order=order, sku="A", quantity=2_000_000_000)
    response = refresh_now(admin_client, managed_views[ItemSales], managed_views[CustomerTotals])
    messages = list(get_messages(response.wsgi_request))
    assert [m.level_tag for m in messages] == ["error", "success"]
    assert "testapp.ItemSales" in str(messages[0])
    assert "integer out of range" in str(messages[0])
    assert str(messages[1]) == "Refreshed 1 view: testapp_customertotals concurrently."
    failed = MaterializedViewRefreshLog.objects.get(failed=True)
    assert (failed.view_name, failed.trigger) == ("testapp_itemsales", "admin")
    state = ManagedView.objects.get(view_name="testapp_itemsales")
    assert state.consecutive_failures == 1
    assert "integer out of range" in response.content.decode()


def test_a_view_being_refreshed_elsewhere_is_skipped(admin_client, managed_views):
    other = raw_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                [conf.advisory_lock_namespace(), ddl.relation(CustomerTotals).quoted(connection)],
            )
            response = refresh_now(admin_client, managed_views[CustomerTotals])
    finally:
        other.close()
    assert texts(response) == [
        "testapp_customertotals: another process is refreshing it right now."
    ]
    assert not MaterializedViewRefreshLog.objects.exists()


def test_a_view_whose_model_is_gone(admin_client, managed_views):
    gone = ManagedView.objects.create(view_name="old_view", app_label="testapp", model_name="old")
    not_a_view = ManagedView.objects.create(
        view_name="testapp_order", app_label="testapp", model_name="order"
    )
    response = refresh_now(admin_client, gone, not_a_view)
    assert texts(response) == [
        "old_view: no view model testapp.old is installed; "
        "run ./manage.py migrate_with_views to drop its view.",
        "testapp_order: no view model testapp.order is installed; "
        "run ./manage.py migrate_with_views to drop its view.",
    ]
    assert not MaterializedViewRefreshLog.objects.exists()


def test_a_dependency_cycle_is_an_error_message(admin_client, managed_views, monkeypatch):
    def cycle(using):
        raise DependencyCycleError(["testapp.A", "testapp.B", "testapp.A"])

    monkeypatch.setattr(live_matview_admin, "database_graph", cycle)
    response = refresh_now(admin_client, managed_views[CustomerTotals])
    assert texts(response) == [str(DependencyCycleError(["testapp.A", "testapp.B", "testapp.A"]))]


class NoItemSalesHere:
    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return None if model_name != "itemsales" else False


@pytest.fixture
def item_sales_elsewhere():
    forget_caches()
    with override_settings(DATABASE_ROUTERS=[f"{__name__}.NoItemSalesHere"]):
        yield
    forget_caches()


@pytest.mark.usefixtures("item_sales_elsewhere")
def test_a_view_the_routers_place_elsewhere(admin_client, managed_views):
    response = refresh_now(admin_client, managed_views[ItemSales], managed_views[CustomerTotals])
    assert texts(response) == [
        "testapp.ItemSales: the database routers do not place it in database 'default', "
        "so it was not refreshed there.",
        "Refreshed 1 view: testapp_customertotals concurrently.",
    ]


# -- who may do what -----------------------------------------------------------------------


@pytest.mark.parametrize("url", [LOG_LIST, VIEW_LIST])
def test_a_user_who_is_not_staff_is_refused(client, django_user_model, url):
    user = django_user_model.objects.create_user("visitor")
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_a_user_who_is_not_staff_cannot_refresh(client, django_user_model, managed_views):
    client.force_login(django_user_model.objects.create_user("visitor"))
    response = client.post(
        VIEW_LIST, {"action": "refresh_now", "_selected_action": [managed_views[ItemSales].pk]}
    )
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))
    assert not MaterializedViewRefreshLog.objects.exists()


@pytest.fixture
def viewer(client, django_user_model):
    """Staff with the view permissions only: may read both lists, may not refresh."""
    user = django_user_model.objects.create_user("viewer", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="live_matview",
            codename__in=["view_managedview", "view_materializedviewrefreshlog"],
        )
    )
    client.force_login(user)
    return client


def test_view_permission_reads_but_does_not_refresh(viewer, logs, managed_views):
    assert viewer.get(LOG_LIST).status_code == 200
    response = viewer.get(VIEW_LIST)
    assert response.status_code == 200
    assert "refresh_now" not in response.content.decode()
    response = refresh_now(viewer, managed_views[ItemSales])
    assert response.status_code == 200
    assert not [text for text in texts(response) if "Refreshed" in text]
    assert MaterializedViewRefreshLog.objects.count() == len(logs)
