"""The by-key refresh as one server-side function: one round trip, failures, the lock,
the commit mode, and the sync that writes it."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import override_settings

from live_matview import refresh_dirty
from live_matview.exceptions import RefreshError
from live_matview.models import KeyMark, ManagedView
from live_matview.processor import sync_views
from live_matview.refresh.by_key import refresh_by_key
from live_matview.refresh.full import Skipped, lock_view
from live_matview.schema import ddl
from live_matview.schema.incremental_refresh import function_name
from live_matview.signals import view_refreshed
from tests.helpers import execute, fetch
from tests.incrementalapp.models import (
    BigClients,
    Client,
    ClientTotals,
    Sale,
    SaleLine,
    SkuTotals,
)
from tests.test_incremental import assert_fresh, logs

pytestmark = pytest.mark.django_db(transaction=True)


def refresh_functions() -> set[str]:
    return {
        row[0]
        for row in fetch(
            "SELECT proname FROM pg_proc WHERE proname LIKE %s", ["live_matview_refresh_%%"]
        )
    }


def test_an_autocommit_save_waits_for_one_statement_more_than_the_write():
    client = Client.objects.create(name="c")
    sale = Sale.objects.create(client=client, amount=1)
    line = SaleLine.objects.create(sale=sale, sku="A", quantity=1)
    sent: list[str] = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    line.quantity = 5
    with connection.execute_wrapper(record):
        line.save()
    # The UPDATE, then one call per view it feeds (ClientTotals, SkuTotals), and the
    # full refresh of BigClients, built on ClientTotals, whose row changed.
    calls = [s for s in sent if "live_matview_refresh_" in s]
    assert sent[0].startswith("UPDATE")
    assert len(calls) == 2
    assert_fresh()
    assert ClientTotals.objects.get(pk=client.pk).quantity == 5


def test_the_log_row_returned_is_the_one_stored():
    client = Client.objects.create(name="c")
    seen = []

    def receiver(sender, log, using, **kwargs):
        seen.append(log)

    view_refreshed.connect(receiver, sender=ClientTotals)
    try:
        Sale.objects.create(client=client, amount=2)
    finally:
        view_refreshed.disconnect(receiver, sender=ClientTotals)
    (log,) = seen
    stored = logs(ClientTotals)[-1]
    fields = ("id", "view_name", "database", "started_at", "updated_at", "duration", "failed")
    assert [getattr(log, f) for f in fields] == [getattr(stored, f) for f in fields]
    assert (log.kind, log.keys, log.reason, log.trigger) == (
        stored.kind,
        stored.keys,
        stored.reason,
        stored.trigger,
    )
    assert (stored.kind, stored.keys, stored.reason) == ("by_key", 1, "1 key changed")
    assert log.pk is not None
    assert not log._state.adding
    state = ManagedView.objects.get(view_name=ClientTotals._meta.db_table)
    assert state.last_refreshed_at == stored.updated_at


def test_a_failed_recompute_keeps_its_marks_logs_and_backs_off():
    client = Client.objects.create(name="c")
    execute("ALTER TABLE incrementalapp_clienttotals ADD CONSTRAINT small CHECK (quantity < 100)")
    try:
        line = SaleLine.objects.create(
            sale=Sale.objects.create(client=client, amount=1), sku="B", quantity=500
        )  # the writer never sees the refresh fail
        failed = logs(ClientTotals)[-1]
        assert failed.failed
        assert "small" in failed.error
        assert KeyMark.objects.filter(view_name=ClientTotals._meta.db_table).exists()
        state = ManagedView.objects.get(view_name=ClientTotals._meta.db_table)
        assert state.consecutive_failures >= 1
        assert state.next_retry_at is not None
    finally:
        execute("ALTER TABLE incrementalapp_clienttotals DROP CONSTRAINT small")
    refresh_dirty()
    assert ClientTotals.objects.get(pk=client.pk).quantity == line.quantity
    assert ManagedView.objects.get(view_name=ClientTotals._meta.db_table).consecutive_failures == 0
    assert_fresh()


def test_a_missing_function_says_to_run_migrate_with_views():
    client = Client.objects.create(name="c")
    execute(f"DROP FUNCTION {function_name(ClientTotals).quoted(connection)}")
    try:
        Sale.objects.create(client=client, amount=1)
        with pytest.raises(RefreshError, match="migrate_with_views"):
            refresh_by_key(ClientTotals)
        assert logs(ClientTotals)[-1].failed
    finally:
        assert any("refresh function" in line for line in sync_views().capture_changes)
    refresh_dirty()
    assert_fresh()


def test_a_busy_view_is_left_to_the_refresh_that_holds_its_lock():
    from tests.helpers import raw_connection

    client = Client.objects.create(name="c")
    other = raw_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            lock_view(cursor, ddl.relation(ClientTotals).quoted(connection))
            with override_settings(LIVE_MATVIEW_REFRESH_MODE="manual"):
                Sale.objects.create(client=client, amount=1)  # marks only
            assert refresh_by_key(ClientTotals, wait=False) is Skipped.BUSY
    finally:
        other.rollback()
        other.close()
    assert refresh_by_key(ClientTotals, wait=False) is not Skipped.BUSY
    assert refresh_by_key(ClientTotals) is Skipped.CLEAN
    assert_fresh()


def test_the_commit_mode_stays_with_the_refresh():
    """Its own transaction commits without waiting for the WAL flush; inside a caller's
    transaction the caller's commit is left as it was."""
    client = Client.objects.create(name="c")
    Sale.objects.create(client=client, amount=1)  # autocommit: refreshed on commit
    assert fetch("SHOW synchronous_commit") == [("on",)]
    with transaction.atomic():
        Sale.objects.create(client=client, amount=2)
        refresh_dirty()  # refreshes inside this transaction
        assert fetch("SHOW synchronous_commit") == [("on",)]
    assert_fresh()


def test_the_sync_writes_rewrites_and_drops_the_functions(monkeypatch):
    names = {function_name(ClientTotals).name, function_name(SkuTotals).name}
    assert names <= refresh_functions()
    assert not sync_views().capture_changes  # up to date: nothing written
    execute(
        f"CREATE OR REPLACE FUNCTION {function_name(SkuTotals).quoted(connection)}"
        "(lmv_wait boolean) RETURNS void LANGUAGE sql AS 'SELECT 1'"
    )  # an overload a former version could have left
    assert any("SkuTotals" in line or "skutotals" in line for line in sync_views().capture_changes)
    assert (
        len(fetch("SELECT 1 FROM pg_proc WHERE proname = %s", [function_name(SkuTotals).name])) == 1
    )
    monkeypatch.setattr(SkuTotals, "refresh_on", [SaleLine])
    sync_views()
    assert function_name(SkuTotals).name not in refresh_functions()
    monkeypatch.undo()
    sync_views()
    assert names <= refresh_functions()
    SaleLine.objects.create(
        sale=Sale.objects.create(client=Client.objects.create(name="c")), sku="Z", quantity=1
    )
    assert logs(SkuTotals)[-1].kind == "by_key"
    assert_fresh()


def test_many_keys_by_key_are_planned_for_their_keys():
    """Past GENERIC_PLAN_KEYS the recompute is planned for its actual keys (EXECUTE)."""
    from live_matview.schema.incremental_refresh import GENERIC_PLAN_KEYS

    clients = Client.objects.bulk_create(
        [Client(name=str(i)) for i in range(8 * GENERIC_PLAN_KEYS)]
    )
    execute("ANALYZE incrementalapp_clienttotals")
    touched = clients[: GENERIC_PLAN_KEYS + 50]
    Sale.objects.bulk_create([Sale(client=c, amount=3) for c in touched])
    last = logs(ClientTotals)[-1]
    assert (last.kind, last.keys) == ("by_key", len(touched))
    assert_fresh()


def test_a_column_type_change_under_the_query_view_migrates():
    """The migration guard drops the query view in the way and creates it again at once;
    the view's table stays, and by-key refreshes go on."""
    from live_matview.schema.migration_guard import views_out_of_the_way

    client = Client.objects.create(name="c")
    sale = Sale.objects.create(client=client, amount=2)
    alter = "ALTER TABLE incrementalapp_saleline ALTER COLUMN quantity TYPE {}"
    try:
        with transaction.atomic(), views_out_of_the_way("default") as guard:
            execute(alter.format("bigint"))
        assert "incrementalapp_clienttotals_lmv_query" in guard.restored
        assert "incrementalapp_skutotals_lmv_query" in guard.restored
        SaleLine.objects.create(sale=sale, sku="Q", quantity=7)
        assert ClientTotals.objects.get(pk=client.pk).quantity == 7
        assert logs(ClientTotals)[-1].kind == "by_key"
        assert_fresh()
    finally:
        with transaction.atomic(), views_out_of_the_way("default"):
            execute(alter.format("integer"))
    sync_views()
    assert_fresh()


@override_settings(LIVE_MATVIEW_LOCK_WAIT=0.2)
def test_an_on_commit_writer_hands_a_busy_incremental_view_to_the_background():
    """SPEC §3: a writer never waits without bound behind another process's refresh, by
    key as in full: past LIVE_MATVIEW_LOCK_WAIT the attempt rolls back with its marks,
    says so in the log, and the background refresher takes the view."""
    from live_matview.models import MaterializedViewRefreshLog
    from live_matview.testing import wait_for_background_refreshes
    from tests.helpers import raw_connection
    from tests.test_faults_refresh import Background

    client = Client.objects.create(name="c")
    other = raw_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            lock_view(cursor, ddl.relation(ClientTotals).quoted(connection))
        save = Background(lambda: Sale.objects.create(client=client, amount=5))
        assert save.done.wait(timeout=60), "the writer waited for the other refresh to end"
        assert save.error is None
        handed = MaterializedViewRefreshLog.objects.get(
            view_name=ClientTotals._meta.db_table, reason__contains="handed"
        )
        assert (handed.trigger, handed.failed, handed.kind) == ("on_commit", False, "by_key")
        assert handed.lock_wait is not None
        assert KeyMark.objects.filter(view_name=ClientTotals._meta.db_table).exists()
    finally:
        other.rollback()
        other.close()
    wait_for_background_refreshes()
    assert_fresh()
    assert not KeyMark.objects.filter(view_name=ClientTotals._meta.db_table).exists()


# Views that list each other in refresh_on (E023 at start-up, yet a pass must end): each
# pair is (the view refreshed first in a pass, the incremental view refreshed after it).
CYCLES = {
    "two-incremental": (ClientTotals, SkuTotals),
    "full-then-incremental": (BigClients, SkuTotals),
}


@pytest.fixture(params=sorted(CYCLES))
def listing_each_other(request, monkeypatch):
    """The two views of a pair each name the other in ``refresh_on``."""
    from live_matview.processor import forget_caches
    from live_matview.views.incremental import is_incremental

    first, then = CYCLES[request.param]
    for view, other in ((first, then), (then, first)):
        name = other._meta.label
        if is_incremental(view):  # a view's entry has no key path: it only orders marks
            monkeypatch.setattr(view, "refresh_on", {**view.refresh_on, name: "pk"})
        else:
            monkeypatch.setattr(view, "refresh_on", [name])
    forget_caches()
    yield first, then
    monkeypatch.undo()
    forget_caches()


def test_a_pass_over_views_listing_each_other_refreshes_each_once(listing_each_other):
    """The incremental view, refreshed second, must not mark the view the pass refreshed
    before it: that one would mark it back, and every later pass refresh both again."""
    from django.db.models import Max

    from live_matview.models import DirtyMark, MaterializedViewRefreshLog

    first, then = listing_each_other
    client = Client.objects.create(name="c")
    sale = Sale.objects.create(client=client, amount=1)
    start = MaterializedViewRefreshLog.objects.aggregate(last=Max("id"))["last"] or 0
    SaleLine.objects.create(sale=sale, sku="A", quantity=12)  # the on-commit pass
    names = {view._meta.db_table for view in (ClientTotals, SkuTotals, BigClients)}
    refreshed = list(
        MaterializedViewRefreshLog.objects.filter(id__gt=start, view_name__in=names)
        .order_by("id")
        .values_list("view_name", flat=True)
    )
    assert sorted(refreshed) == sorted(names)  # each once
    assert refreshed.index(first._meta.db_table) < refreshed.index(then._meta.db_table)
    assert not DirtyMark.objects.filter(view_name__in=names).exists()
    assert not KeyMark.objects.filter(view_name__in=names).exists()
    again = refresh_dirty().refreshed  # the next pass has nothing left of them
    assert [log.view_name for log in again if log.view_name in names] == []
    assert_fresh()
