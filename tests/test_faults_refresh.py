"""Refresh-stage faults: lost writes, cycles, isolation, bounded waits, honest logs, retention.

Each test commits for real and uses second connections (a psycopg2 client Django knows
nothing of) to hold locks, so that what the test waits for is a state PostgreSQL shows
(``pg_locks``), never a duration.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test.utils import override_settings
from django.utils import timezone

from live_matview import conf, refresh_dirty
from live_matview.capture.source_map import forget_source_maps
from live_matview.exceptions import RefreshError
from live_matview.models import DirtyMark, ManagedView, MaterializedViewRefreshLog
from live_matview.refresh.worker import Worker
from live_matview.schema import ddl
from live_matview.testing import capture_refreshes, wait_for_background_refreshes
from tests.helpers import (
    assert_fresh,
    execute,
    fetch,
    raw_connection,
    view_differences,
    wait_until,
)
from tests.testapp.models import BigSpenders, CustomerTotals, Order

pytestmark = pytest.mark.django_db(transaction=True)


def marks(view) -> int:
    return DirtyMark.objects.filter(view_name=view._meta.db_table).count()


def quoted(view) -> str:
    return ddl.relation(view).quoted(connection)


class LockHolder:
    """Another client holding a view's refresh lock in an open transaction."""

    def __init__(self, view) -> None:
        self.conn = raw_connection()
        self.pid = self.conn.get_backend_pid()
        with self.conn.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                [conf.advisory_lock_namespace(), quoted(view)],
            )

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.commit()
            self.conn.close()


def waiting_for_advisory_locks() -> list[int]:
    """Backends of this database waiting for an advisory lock, as PostgreSQL shows them
    (pg_locks covers the whole server, where other test runs may be waiting too)."""
    return [
        pid
        for (pid,) in fetch(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY pid"
        )
    ]


class Background:
    """Run a function in a thread with its own database connection; keep its result."""

    def __init__(self, function) -> None:
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(function,), daemon=True)
        self.thread.start()

    def _run(self, function) -> None:
        try:
            self.result = function()
        except BaseException as exc:  # noqa: BLE001  (handed to the test)
            self.error = exc
        finally:
            connections.close_all()
            self.done.set()

    def join(self) -> None:
        assert self.done.wait(timeout=120), "the thread never finished"


# -- 1. An explicit refresh inside the writing transaction ---------------------------------


@pytest.mark.parametrize("how", ["View.refresh", "refresh_dirty"])
def test_a_write_after_a_refresh_in_the_same_transaction_is_not_lost(capture_mode, customer, how):
    with transaction.atomic():
        Order.objects.create(customer=customer, amount=1)
        CustomerTotals.refresh() if how == "View.refresh" else refresh_dirty()
        Order.objects.create(customer=customer, amount=2)
        # The second write marked the view again, in this transaction.
        assert marks(CustomerTotals) >= 1
    assert_fresh(CustomerTotals, BigSpenders)
    assert list(CustomerTotals.objects.values_list("orders", "total")) == [(2, 3)]
    assert marks(CustomerTotals) == 0


def test_refresh_in_a_transaction_keeps_one_mark_per_table_after_it(capture_mode, customer):
    """After the refresh, the transaction's writes mark again once, not once per statement."""
    with transaction.atomic():
        Order.objects.create(customer=customer, amount=1)
        CustomerTotals.refresh()
        for amount in range(5):
            Order.objects.create(customer=customer, amount=amount)
        assert marks(CustomerTotals) == 1
    assert_fresh(CustomerTotals)


# -- 5. Views that list each other in refresh_on -------------------------------------------


@pytest.fixture
def refresh_on_cycle(monkeypatch):
    """CustomerTotals lists BigSpenders, which reads CustomerTotals: a cycle of views."""
    monkeypatch.setattr(
        CustomerTotals, "refresh_on", [*CustomerTotals.refresh_on, "testapp.BigSpenders"]
    )
    forget_source_maps()
    yield
    monkeypatch.undo()
    forget_source_maps()


@pytest.mark.usefixtures("refresh_on_cycle")
def test_views_listing_each_other_end_up_with_no_marks(customer):
    worker = Worker(listen=False)
    Order.objects.create(customer=customer, amount=150)  # the on-commit pass
    assert marks(CustomerTotals) + marks(BigSpenders) == 0
    assert_fresh(CustomerTotals, BigSpenders)

    CustomerTotals.refresh()  # marks BigSpenders, which lists... CustomerTotals
    for _ in range(3):
        if marks(CustomerTotals) + marks(BigSpenders) == 0:
            break
        worker.run_once()
    assert marks(CustomerTotals) + marks(BigSpenders) == 0
    assert_fresh(CustomerTotals, BigSpenders)


# -- 6. REPEATABLE READ connections --------------------------------------------------------


@pytest.fixture
def repeatable_read():
    """Every new connection of the default alias runs at REPEATABLE READ."""
    from django.db.backends.postgresql.psycopg_any import IsolationLevel

    options = connection.settings_dict["OPTIONS"]
    connections.close_all()
    options["isolation_level"] = IsolationLevel.REPEATABLE_READ
    try:
        with transaction.atomic():
            assert fetch("SHOW transaction_isolation") == [("repeatable read",)]
        yield
    finally:
        del options["isolation_level"]
        connections.close_all()


@pytest.mark.usefixtures("repeatable_read")
@override_settings(LIVE_MATVIEW_LOCK_WAIT=None)
def test_on_commit_refreshes_that_waited_succeed_under_repeatable_read(customer):
    writers = 4
    holder = LockHolder(CustomerTotals)
    try:
        with capture_refreshes() as refreshes:
            threads = [
                Background(lambda n=n: Order.objects.create(customer=customer, amount=n + 1))
                for n in range(writers)
            ]
            # All four wait for CustomerTotals' lock, each in its own refresh transaction...
            wait_until(
                lambda: len(waiting_for_advisory_locks()) == writers, message="4 waiting writers"
            )
            holder.release()  # ...then get it one after another
            for thread in threads:
                thread.join()
                assert thread.error is None
    finally:
        holder.release()
    assert refreshes.failed == []
    assert not MaterializedViewRefreshLog.objects.filter(failed=True).exists()
    assert_fresh(CustomerTotals, BigSpenders)
    assert ManagedView.objects.get(view_name="testapp_customertotals").consecutive_failures == 0


@pytest.fixture
def failing_state_update():
    """A real PostgreSQL error from the UPDATE of a view's state: ``fail(times, code)``
    makes the next ``times`` of them raise SQLSTATE ``code`` (a sequence counts, so the
    count survives the rollback)."""

    def fail(times: int, code: str) -> None:
        execute("DROP SEQUENCE IF EXISTS test_fault_count")
        execute("CREATE SEQUENCE test_fault_count")
        execute(
            f"""
            CREATE OR REPLACE FUNCTION test_fault() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('test_fault_count') <= {int(times)} THEN
                    RAISE EXCEPTION 'injected fault' USING ERRCODE = '{code}';
                END IF;
                RETURN NEW;
            END $$
            """
        )
        execute(
            "CREATE TRIGGER test_fault BEFORE UPDATE ON live_matview_managedview "
            "FOR EACH ROW EXECUTE FUNCTION test_fault()"
        )

    try:
        yield fail
    finally:
        execute("DROP TRIGGER IF EXISTS test_fault ON live_matview_managedview")
        execute("DROP FUNCTION IF EXISTS test_fault()")
        execute("DROP SEQUENCE IF EXISTS test_fault_count")


def test_a_serialization_failure_is_retried(customer, failing_state_update):
    Order.objects.create(customer=customer, amount=5)
    failing_state_update(1, "40001")
    before = MaterializedViewRefreshLog.objects.count()
    log = CustomerTotals.refresh()
    assert not log.failed
    assert MaterializedViewRefreshLog.objects.count() == before + 1
    assert fetch("SELECT last_value FROM test_fault_count") == [(2,)]  # failed once, then not


# -- 8. Honest logs ------------------------------------------------------------------------


def test_a_failure_while_recording_the_state_is_logged(customer, failing_state_update):
    Order.objects.create(customer=customer, amount=5)
    failing_state_update(1000, "P0001")
    execute(
        "INSERT INTO testapp_order (customer_id, amount, created) VALUES (%s, 7, now())",
        [customer.pk],
    )
    with pytest.raises(RefreshError) as caught:
        CustomerTotals.refresh()
    log = MaterializedViewRefreshLog.objects.get(pk=caught.value.log_id)
    assert log.failed
    assert "injected fault" in log.error
    assert log.lock_wait is not None
    # The refresh was rolled back with it: the view is still stale, and still marked.
    assert view_differences(CustomerTotals) != (0, 0)
    assert marks(CustomerTotals) >= 1


def test_a_failure_at_the_lock_wait_is_logged(customer):
    holder = LockHolder(CustomerTotals)
    try:
        refresh = Background(CustomerTotals.refresh)
        wait_until(lambda: len(waiting_for_advisory_locks()) == 1, message="refresh waiting")
        (pid,) = waiting_for_advisory_locks()
        fetch("SELECT pg_cancel_backend(%s)", [pid])
        refresh.join()
    finally:
        holder.release()
    assert isinstance(refresh.error, RefreshError)
    log = MaterializedViewRefreshLog.objects.get(pk=refresh.error.log_id)
    assert log.failed
    assert log.view_name == "testapp_customertotals"
    assert "canceling statement" in log.error
    assert log.lock_wait is not None
    assert log.duration is None  # the refresh itself never started


def test_the_lock_wait_is_logged_apart_from_the_refresh(customer):
    held_for = 0.3
    holder = LockHolder(CustomerTotals)
    try:
        refresh = Background(CustomerTotals.refresh)
        wait_until(lambda: len(waiting_for_advisory_locks()) == 1, message="refresh waiting")
        time.sleep(held_for)  # not a synchronisation: makes the wait long enough to tell apart
        holder.release()
        refresh.join()
    finally:
        holder.release()
    log = refresh.result
    assert log.lock_wait >= timedelta(seconds=held_for)
    whole = log.updated_at - log.started_at
    # The wait and the refresh are two parts of the whole attempt, not one inside the other.
    assert log.lock_wait + log.duration <= whole + timedelta(milliseconds=50)


# -- 7. Bounded waits ----------------------------------------------------------------------


@override_settings(LIVE_MATVIEW_LOCK_WAIT=0.2)
def test_a_writer_hands_a_busy_view_to_the_background_refresher(customer):
    holder = LockHolder(CustomerTotals)
    try:
        save = Background(lambda: Order.objects.create(customer=customer, amount=150))
        returned = save.done.wait(timeout=60)
        assert not holder.conn.closed  # the lock is still held...
        assert returned, "...but the writer waited for the other refresh to end"
        assert save.error is None
        handed_off = MaterializedViewRefreshLog.objects.get(
            view_name="testapp_customertotals", reason__contains="handed"
        )
        assert handed_off.trigger == "on_commit"
        assert not handed_off.failed
        assert "handed to the background refresher" in handed_off.reason
        assert f"process {holder.pid}" in handed_off.reason
        assert handed_off.lock_wait is not None
        assert view_differences(CustomerTotals) != (0, 0)  # not refreshed behind the lock
    finally:
        holder.release()
    wait_for_background_refreshes()
    assert_fresh(CustomerTotals, BigSpenders)
    assert MaterializedViewRefreshLog.objects.filter(
        view_name="testapp_customertotals", trigger="async", failed=False
    ).exists()


# -- 9. Log retention ----------------------------------------------------------------------


def old_log_rows() -> dict[str, list[int]]:
    """View 'a': three rows 20 days old and one new; view 'b': two old rows only."""
    created: dict[str, list[int]] = {"a": [], "b": []}
    for view, age in [("a", 20), ("a", 20), ("a", 20), ("a", 0), ("b", 30), ("b", 20)]:
        log = MaterializedViewRefreshLog.objects.create(view_name=view)
        MaterializedViewRefreshLog.objects.filter(pk=log.pk).update(
            updated_at=timezone.now() - timedelta(days=age)
        )
        created[view].append(log.pk)
    return created


def remaining(view: str) -> list[int]:
    return sorted(
        MaterializedViewRefreshLog.objects.filter(view_name=view).values_list("pk", flat=True)
    )


def test_prune_log_command_keeps_recent_rows_and_each_views_latest():
    rows = old_log_rows()
    call_command("live_matview_prune_log", verbosity=0)
    assert remaining("a") == [rows["a"][3]]
    assert remaining("b") == [rows["b"][1]]  # older than the retention, but b's latest


@override_settings(LIVE_MATVIEW_LOG_RETENTION=None)
def test_no_retention_keeps_every_row():
    old_log_rows()
    call_command("live_matview_prune_log", verbosity=0)
    assert MaterializedViewRefreshLog.objects.filter(view_name__in=["a", "b"]).count() == 6


@override_settings(LIVE_MATVIEW_LOG_RETENTION=25 * 24 * 3600)
def test_retention_in_seconds():
    rows = old_log_rows()
    call_command("live_matview_prune_log", verbosity=0)
    assert remaining("a") == rows["a"]
    assert remaining("b") == [rows["b"][1]]


def test_the_worker_prunes_at_most_once_per_interval():
    from live_matview.refresh import worker as worker_module

    worker = Worker(listen=False)
    old_log_rows()
    assert worker.prune_if_due(now=1000.0) == 4
    old_log_rows()
    assert worker.prune_if_due(now=1000.0 + worker_module.PRUNE_INTERVAL - 1) == 0
    assert worker.prune_if_due(now=1000.0 + worker_module.PRUNE_INTERVAL) == 5


@pytest.mark.slow
def test_a_running_worker_prunes_the_log():
    from tests.test_worker import workers

    rows = old_log_rows()
    with workers(1, "--interval", "0.2", "--no-listen"):
        wait_until(lambda: remaining("a") == [rows["a"][3]], message="the log pruned")
    assert remaining("b") == [rows["b"][1]]
