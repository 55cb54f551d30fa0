"""Incremental views under concurrency, with real threads and their own connections."""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection, connections, transaction
from django.test.utils import override_settings

from live_matview import conf
from live_matview.models import KeyMark, MaterializedViewRefreshLog
from live_matview.refresh import background
from live_matview.refresh.worker import Worker
from tests.helpers import fetch, raw_connection
from tests.incrementalapp.models import Client, ClientTotals, Sale, SaleLine
from tests.test_incremental import assert_fresh

pytestmark = pytest.mark.django_db(transaction=True)


def _writer(seed: int, clients: list[int], errors: list[BaseException]) -> None:
    """Random writes on a few shared clients: every key is written by every thread."""
    rng = random.Random(seed)
    try:
        for _ in range(15):
            client = rng.choice(clients)
            with transaction.atomic():
                sale = Sale.objects.create(client_id=client, amount=rng.randint(1, 9))
                SaleLine.objects.create(sale=sale, sku=rng.choice("xyz"), quantity=2)
            moved = Sale.objects.filter(client_id=client).order_by("?").first()
            if moved is not None:
                Sale.objects.filter(pk=moved.pk).update(client_id=rng.choice(clients))
    except BaseException as exc:  # noqa: BLE001  (reported by the test)
        errors.append(exc)
    finally:
        connections.close_all()


def _run_writers(clients: list[int], count: int = 4) -> list[BaseException]:
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_writer, args=(seed, clients, errors)) for seed in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.parametrize("mode", ["on_commit", "async", "manual"])
def test_writers_on_overlapping_keys_leave_the_views_exact(mode):
    clients = [Client.objects.create(name=str(i)).pk for i in range(3)]
    with override_settings(LIVE_MATVIEW_REFRESH_MODE=mode):
        errors = _run_writers(clients)
        if mode == "async":
            background.wait_idle()
        elif mode == "manual":
            Worker(using="default").run_once()
    assert errors == []
    assert not MaterializedViewRefreshLog.objects.filter(failed=True).exists()
    assert not KeyMark.objects.exists()
    assert MaterializedViewRefreshLog.objects.filter(
        view_name=ClientTotals._meta.db_table, kind="by_key"
    ).exists()
    assert_fresh()


def test_a_reader_never_sees_a_key_missing_during_a_large_change():
    """Holds the refresh of a 30% change between its writes and its commit (a trigger on
    the view's table waits for a lock the test holds), and reads the view meanwhile."""
    clients = Client.objects.bulk_create([Client(name=str(i)) for i in range(400)])
    Sale.objects.bulk_create([Sale(client=c, amount=1) for c in clients])
    assert ClientTotals.objects.count() == 400
    with connection.cursor() as cursor:  # the share of 30% is judged on PostgreSQL's estimate
        cursor.execute("ANALYZE incrementalapp_clienttotals")
    gate = raw_connection()
    gate.autocommit = True
    lock = (conf.advisory_lock_namespace() + 7, 4242)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION public.lmv_test_gate() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN PERFORM pg_advisory_xact_lock_shared({lock[0]}, {lock[1]}); "
            "RETURN NULL; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER lmv_test_gate AFTER INSERT ON incrementalapp_clienttotals "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.lmv_test_gate()"
        )
    errors: list[BaseException] = []

    def change_30_percent():
        try:
            Sale.objects.filter(client_id__in=[c.pk for c in clients[:120]]).update(amount=2)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    try:
        with gate.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", lock)
        writer = threading.Thread(target=change_30_percent)
        writer.start()
        _await_waiter(lock)  # the refresh has deleted and inserted, and not committed
        reader = raw_connection()
        try:
            with reader.cursor() as cursor:
                cursor.execute("SELECT count(*), sum(amount) FROM incrementalapp_clienttotals")
                assert cursor.fetchone() == (400, 400)  # the old rows, every key
        finally:
            reader.close()
        with gate.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", lock)
        writer.join()
    finally:
        gate.close()
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER lmv_test_gate ON incrementalapp_clienttotals")
            cursor.execute("DROP FUNCTION public.lmv_test_gate()")
    assert errors == []
    assert fetch("SELECT count(*), sum(amount) FROM incrementalapp_clienttotals")[0] == (400, 520)
    last = MaterializedViewRefreshLog.objects.filter(view_name=ClientTotals._meta.db_table).first()
    assert last.kind == "full"
    assert_fresh()


def _await_waiter(lock: tuple[int, int]) -> None:
    """Until a session waits for ``lock`` (a condition, polled on the server)."""
    probe = raw_connection()
    probe.autocommit = True
    try:
        with probe.cursor() as cursor:
            for _ in range(6000):
                cursor.execute(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
                    "AND NOT granted AND classid = %s AND objid = %s), pg_sleep(0.01)",
                    lock,
                )
                if cursor.fetchone()[0]:
                    return
        raise AssertionError("the refresh never reached the gate")
    finally:
        probe.close()
