"""Explicit refresh: mode choice, the log row, failures, signals and refresh_views."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from live_matview import RefreshError
from live_matview.models import ManagedView, MaterializedViewRefreshLog
from live_matview.signals import refresh_failed, view_refreshed
from tests.helpers import execute
from tests.testapp.models import (
    BigSpenders,
    CustomerTotals,
    Item,
    ItemSales,
    Order,
)

pytestmark = pytest.mark.django_db


def test_refresh_makes_the_view_show_the_write(customer):
    Order.objects.create(customer=customer, amount=70)
    Order.objects.create(customer=customer, amount=50)
    assert not CustomerTotals.objects.exists()
    CustomerTotals.refresh()
    row = CustomerTotals.objects.get()
    assert (row.customer_id, row.orders, row.total) == (customer.pk, 2, 120)


def test_concurrently_when_a_unique_index_allows_it():
    log = CustomerTotals.refresh()
    assert log.concurrently is True
    assert log.reason == "populated, with a unique index"
    assert not log.failed
    assert log.duration is not None
    assert log.started_at <= log.updated_at


def test_plain_without_a_unique_index():
    log = ItemSales.refresh()
    assert log.concurrently is False
    assert log.reason == "no unique index usable by CONCURRENTLY"


def test_plain_when_asked():
    assert CustomerTotals.refresh(concurrently=False).concurrently is False


def test_plain_when_not_populated_yet():
    execute("REFRESH MATERIALIZED VIEW testapp_customertotals WITH NO DATA")
    log = CustomerTotals.refresh()
    assert log.concurrently is False
    assert "not populated" in log.reason
    CustomerTotals.objects.count()  # readable again


def test_view_setting_forces_plain(monkeypatch):
    monkeypatch.setattr(CustomerTotals, "refresh_concurrently", False)
    assert CustomerTotals.refresh().concurrently is False


def test_concurrently_without_index_is_logged_and_raised():
    with pytest.raises(RefreshError) as excinfo:
        ItemSales.refresh(concurrently=True)
    log = MaterializedViewRefreshLog.objects.get(pk=excinfo.value.log_id)
    assert log.failed
    assert log.view_name == "testapp_itemsales"
    assert "unique index" in log.error


def test_failure_inside_atomic_is_logged_and_the_transaction_goes_on(customer):
    """The refresh runs in a savepoint: its failure can be logged in the caller's
    transaction, which stays usable (django-materialized-view raised InternalError here)."""
    order = Order.objects.create(customer=customer, amount=1)
    with transaction.atomic():
        Item.objects.create(order=order, sku="X", quantity=2_000_000_000)
        Item.objects.create(order=order, sku="X", quantity=2_000_000_000)
        with pytest.raises(RefreshError, match="integer out of range"):
            ItemSales.refresh()
        assert Item.objects.count() == 2
    log = MaterializedViewRefreshLog.objects.get(view_name="testapp_itemsales")
    assert log.failed
    assert "integer out of range" in log.error
    assert log.duration is not None


def test_refresh_of_a_missing_view_says_what_to_run():
    execute("DROP MATERIALIZED VIEW testapp_itemsales")
    with pytest.raises(RefreshError, match="migrate_with_views"):
        ItemSales.refresh()
    assert MaterializedViewRefreshLog.objects.get().failed


def test_signals():
    received = []

    def on_refreshed(sender, log, using, **kwargs):
        received.append(("ok", sender, log.pk, using))

    def on_failed(sender, log, error, using, **kwargs):
        received.append(("failed", sender, log.pk, using))

    view_refreshed.connect(on_refreshed)
    refresh_failed.connect(on_failed)
    try:
        ok = CustomerTotals.refresh()
        with pytest.raises(RefreshError) as excinfo:
            ItemSales.refresh(concurrently=True)
    finally:
        view_refreshed.disconnect(on_refreshed)
        refresh_failed.disconnect(on_failed)
    assert received == [
        ("ok", CustomerTotals, ok.pk, "default"),
        ("failed", ItemSales, excinfo.value.log_id, "default"),
    ]


LOG_FIELDS = (
    "id", "view_name", "database", "started_at", "updated_at", "duration", "lock_wait",
    "failed", "concurrently", "reason", "trigger", "error",
)  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_refresh_sends_one_statement_in_one_transaction(customer):
    """Lock, mode, marks, REFRESH, dependents, log and state rows: one round trip, which
    is its own transaction (an implicit one: no BEGIN or COMMIT is sent, and Django would
    record them as statements if they were)."""
    Order.objects.create(customer=customer, amount=5)
    with CaptureQueriesContext(connection) as queries:
        log = CustomerTotals.refresh()
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 1, statements
    assert statements[0].startswith("SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SELECT")
    assert "live_matview_refresh(" in statements[0]
    assert connection.get_autocommit()
    # The returned log row was built from the function's result, and is the stored one.
    stored = MaterializedViewRefreshLog.objects.get(pk=log.pk)
    assert [getattr(log, f) for f in LOG_FIELDS] == [getattr(stored, f) for f in LOG_FIELDS]
    assert log.concurrently is True
    assert not log._state.adding
    state = ManagedView.objects.get(view_name="testapp_customertotals")
    assert (state.consecutive_failures, state.last_refreshed_at) == (0, log.updated_at)
    assert BigSpenders.objects.filter(customer_id=customer.pk).count() == 0  # marked only
    assert CustomerTotals.objects.get().total == 5


def test_a_refresh_inside_atomic_sends_one_statement_in_a_savepoint():
    CustomerTotals.refresh()  # the view graph and source map are read once, then cached
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        CustomerTotals.refresh()
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 3, statements
    assert statements[0].startswith("SAVEPOINT")
    assert statements[1].startswith("SELECT * FROM")
    assert "live_matview_refresh(" in statements[1]
    assert statements[2].startswith("RELEASE SAVEPOINT")


def test_failures_back_off_on_the_server(settings):
    settings.LIVE_MATVIEW_RETRY_BASE = 10
    settings.LIVE_MATVIEW_RETRY_MAX = 25
    delays = []
    for _ in range(3):
        with pytest.raises(RefreshError):
            ItemSales.refresh(concurrently=True)
        state = ManagedView.objects.get(view_name="testapp_itemsales")
        log = MaterializedViewRefreshLog.objects.filter(view_name="testapp_itemsales").first()
        delays.append((state.next_retry_at - log.updated_at).total_seconds())
        assert "unique index" in state.last_error
    assert delays == [10, 20, 25]  # doubled per failure, capped
    assert state.consecutive_failures == 3
    ItemSales.refresh()
    state.refresh_from_db()
    assert (state.consecutive_failures, state.next_retry_at, state.last_error) == (0, None, "")


def test_refresh_views_refreshes_parents_before_children():
    out = io.StringIO()
    call_command("refresh_views", "--progress", stdout=out)
    names = list(
        MaterializedViewRefreshLog.objects.order_by("id").values_list("view_name", flat=True)
    )
    assert names.index("testapp_customertotals") < names.index("testapp_bigspenders")
    assert all(log.trigger == "command" for log in MaterializedViewRefreshLog.objects.all())
    assert "] testapp.BigSpenders ... plain, " in out.getvalue()


def test_refresh_views_shows_no_progress_when_not_on_a_terminal():
    out = io.StringIO()
    call_command("refresh_views", stdout=out)
    assert out.getvalue().startswith("Refreshed ")  # only the summary line (test_first_hour)
    assert " ... " not in out.getvalue()
    assert MaterializedViewRefreshLog.objects.filter(trigger="command").exists()


def test_refresh_views_named_and_mode(customer):
    Order.objects.create(customer=customer, amount=500)
    call_command(
        "refresh_views",
        "testapp.BigSpenders",
        "testapp.CustomerTotals",
        "--no-concurrently",
        stdout=io.StringIO(),
    )
    logs = list(MaterializedViewRefreshLog.objects.order_by("id"))
    assert [log.view_name for log in logs] == ["testapp_customertotals", "testapp_bigspenders"]
    assert not any(log.concurrently for log in logs)
    assert BigSpenders.objects.get().total == 500


def test_refresh_views_rejects_unknown_names():
    with pytest.raises(CommandError, match="testapp.Order is not a materialized view"):
        call_command("refresh_views", "testapp.Order")


def test_refresh_views_reports_failures(customer):
    order = Order.objects.create(customer=customer, amount=1)
    Item.objects.bulk_create([Item(order=order, sku="X", quantity=2_000_000_000) for _ in range(2)])
    with pytest.raises(CommandError, match="testapp.ItemSales"):
        call_command("refresh_views", stdout=io.StringIO(), stderr=io.StringIO())
    # The others were still refreshed.
    assert MaterializedViewRefreshLog.objects.filter(failed=False).count() >= 2


def test_status_command_shows_every_view(customer):
    import json

    Order.objects.create(customer=customer, amount=5)
    CustomerTotals.refresh()
    out = io.StringIO()
    call_command("live_matview_status", "--exact", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["view", "rows", "size"]
    row = next(line for line in lines if line.startswith("testapp_customertotals"))
    assert " 1 " in row
    assert "concurrently" in row
    assert "testapp_order" in row
    out = io.StringIO()
    call_command("live_matview_status", "--json", stdout=out)
    statuses = {item["view"]: item for item in json.loads(out.getvalue())}
    totals = statuses["testapp_customertotals"]
    assert totals["exists"]
    assert totals["populated"]
    assert totals["last_concurrently"]
    assert statuses["testapp_bigspenders"]["depends_on"] == ["testapp.CustomerTotals"]


def test_status_shows_failures_and_backoff(customer):
    import json

    with pytest.raises(RefreshError):
        ItemSales.refresh(concurrently=True)
    out = io.StringIO()
    call_command("live_matview_status", "--json", stdout=out)
    item_sales = next(s for s in json.loads(out.getvalue()) if s["view"] == "testapp_itemsales")
    assert item_sales["consecutive_failures"] == 1
    assert item_sales["next_retry"] is not None
    assert item_sales["last_failed"] is True


@pytest.mark.django_db(transaction=True)
def test_refresh_views_dirty_refreshes_marked_views_and_their_dependents(customer):
    from tests.helpers import raw_connection

    conn = raw_connection()  # a write Django does not see: only marks tell
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute("DELETE FROM live_matview_dirtymark")
            cursor.execute(
                "INSERT INTO testapp_order (customer_id, amount, created) VALUES (%s, 5, now())",
                [customer.pk],
            )
    finally:
        conn.close()
    MaterializedViewRefreshLog.objects.all().delete()
    call_command("refresh_views", "--dirty", stdout=io.StringIO())
    refreshed = set(MaterializedViewRefreshLog.objects.values_list("view_name", flat=True))
    assert {"testapp_customertotals", "testapp_bigspenders"} <= refreshed
    assert "testapp_itemsales" not in refreshed  # not marked, not built on a marked view


def test_views_in_backoff_wait_rather_than_count_as_busy():
    from live_matview.models import ManagedView
    from live_matview.refresh.passes import refresh_pass

    with pytest.raises(RefreshError):
        ItemSales.refresh(concurrently=True)  # one failure: back-off starts
    assert ManagedView.objects.get(view_name="testapp_itemsales").next_retry_at is not None
    result = refresh_pass("default", {ItemSales}, trigger="worker", honour_backoff=True)
    assert result.waiting == [ItemSales]
    assert result.skipped == []  # "busy" would make the worker poll again at once


def test_unique_constraint_options_a_view_cannot_take_are_an_error():
    from django.db import connection, models
    from django.db.models import Q
    from django.test.utils import isolate_apps

    from live_matview import MaterializedViewModel
    from live_matview.schema import ddl

    with isolate_apps("tests.testapp"):

        class Partial(MaterializedViewModel):
            id = models.BigIntegerField(primary_key=True)

            class Meta:
                app_label = "testapp"
                constraints = [
                    models.UniqueConstraint(fields=["id"], name="p_uniq", condition=Q(id__gt=0))
                ]

    with pytest.raises(ValueError, match="'p_uniq' has a condition"):
        ddl.index_statements(Partial, connection)
