"""Workers as real processes while their own database server is stopped and started again
under them, in the middle of refreshing a view that has a child view."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg2
import pytest
from django.db import connection

from live_matview.views.query import view_sql
from tests.helpers import wait_until
from tests.test_worker import follow, migrated_database, workers
from tests.testapp.models import BigSpenders, CustomerTotals

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROUNDS = 3
WORKERS = 3


def reachable(url: str) -> bool:
    try:
        psycopg2.connect(url).close()
    except psycopg2.OperationalError:
        return False
    return True


def query(url: str, sql: str, params=()):
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if cursor.description else None
    finally:
        conn.close()


def differences(url: str, model) -> tuple[int, int]:
    """Rows in the view but not in its query, and the other way round, on that server."""
    table = f'"{model._meta.db_table}"'
    sql = view_sql(model, connection)
    (stale,) = query(url, f"SELECT count(*) FROM (SELECT * FROM {table} EXCEPT ({sql})) d")[0]
    (missing,) = query(url, f"SELECT count(*) FROM (({sql}) EXCEPT SELECT * FROM {table}) d")[0]
    return stale, missing


def refresh_waiting_on_lock(url: str) -> bool:
    """A worker is inside CustomerTotals' REFRESH, waiting for the test's lock on it."""
    rows = query(
        url,
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND wait_event = 'relation' AND query LIKE '%%live_matview_refresh(%%customertotals%%'",
    )
    return rows == [(1,)]


@pytest.fixture
def data_dir():
    """Outside pytest's shared temporary root, which concurrent pytest runs of the same user
    prune and re-permission (the server runs as another user and must reach its files)."""
    path = Path(tempfile.mkdtemp(prefix="live_matview_worker_faults_"))
    try:
        yield path / "pgdata"
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_workers_survive_the_server_going_away_mid_refresh(data_dir):
    """Each round: a worker's refresh of CustomerTotals (parent of BigSpenders) is held by a
    lock, the server stops under it, and starts again. Every worker must live
    through every round, and catch up."""
    from live_matview import embedded

    server = embedded.start(data_dir)
    try:
        url, env = migrated_database(server, "worker_faults")
        query(url, "INSERT INTO testapp_customer (name) VALUES ('Ada')")

        with workers(WORKERS, "--interval", "0.3", url=url) as procs:
            outputs = [follow(proc) for proc in procs]
            for round_ in range(1, ROUNDS + 1):
                # A refresh by a client outside the library, left uncommitted: its lock on
                # the view (not the library's advisory lock) holds the worker's REFRESH.
                locker = psycopg2.connect(url)
                with locker.cursor() as cursor:
                    cursor.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY testapp_customertotals")
                query(
                    url,
                    "INSERT INTO testapp_order (customer_id, amount, created) "
                    "SELECT min(id), 100, now() FROM testapp_customer",
                )
                wait_until(lambda: refresh_waiting_on_lock(url), message="refresh under way")
                seen = [sum("Database unavailable" in line for line in out) for out in outputs]
                embedded.stop(data_dir)
                # Every worker either notices the outage or dies of it.
                wait_until(
                    lambda seen=seen: all(
                        proc.poll() is not None
                        or sum("Database unavailable" in line for line in out) > count
                        for proc, out, count in zip(procs, outputs, seen, strict=True)
                    ),
                    timeout=60,
                    message="every worker noticing the outage",
                )
                dead = [n for n, proc in enumerate(procs) if proc.poll() is not None]
                assert dead == [], f"round {round_}: workers {dead} exited:\n" + "".join(
                    outputs[dead[0]][-20:] if dead else []
                )
                server = embedded.start(data_dir)
                locker.close()
                wait_until(
                    lambda: (
                        reachable(url)
                        and query(url, "SELECT count(*) FROM live_matview_dirtymark") == [(0,)]
                    ),
                    timeout=120,
                    message=f"catch-up after restart {round_}",
                )
            assert [proc.poll() for proc in procs] == [None] * WORKERS
        assert query(url, "SELECT sum(orders) FROM testapp_customertotals") == [(ROUNDS,)]
        assert differences(url, CustomerTotals) == (0, 0)
        assert differences(url, BigSpenders) == (0, 0)
        assert query(url, "SELECT count(*) FROM testapp_bigspenders") == [(1,)]
    finally:
        embedded.stop(data_dir)
