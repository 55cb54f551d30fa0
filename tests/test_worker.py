"""``live_matview_worker`` as real processes, against writers Django knows nothing of."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.core.management import call_command

from tests.helpers import (
    assert_fresh,
    database_url,
    fetch,
    raw_connection,
    wait_until,
)
from tests.testapp.models import Customer, CustomerTotals, SleepSetting, SlowView

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def migrated_database(server, name: str) -> tuple[str, dict[str, str]]:
    """A new database on ``server`` (the test's own embedded one), migrated with its views
    by another process; its URL and the environment that points Django at it."""
    import psycopg2

    admin = psycopg2.connect(server.uri)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()
    url = server.uri_for(name)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    subprocess.run(
        [sys.executable, "-m", "django", "migrate_with_views", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    return url, env


def start_worker(*args: str, url: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url or database_url(), "PYTHONUNBUFFERED": "1"}
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    return subprocess.Popen(
        [sys.executable, "-m", "django", "live_matview_worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@contextmanager
def workers(count: int = 1, *args: str, url: str | None = None):
    procs = [start_worker(*args, url=url) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover
                proc.kill()


def follow(proc: subprocess.Popen) -> list[str]:
    """Collect a process's output lines in the background, to wait on what it says."""
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def insert_order(conn, customer_id: int, amount: int) -> None:
    with conn, conn.cursor() as cursor:
        cursor.execute(
            "INSERT INTO testapp_order (customer_id, amount, created) VALUES (%s, %s, now())",
            [customer_id, amount],
        )


def totals_of(customer_id: int):
    rows = fetch(
        "SELECT orders, total FROM testapp_customertotals WHERE customer_id = %s", [customer_id]
    )
    return rows[0] if rows else None


@pytest.mark.parametrize("listen", [True, False], ids=["notify", "polling"])
def test_writes_by_other_clients_reach_the_view(listen):
    customer = Customer.objects.create(name="Ada")
    args = ["--interval", "0.3"] + ([] if listen else ["--no-listen"])
    conn = raw_connection()
    try:
        with workers(1, *args):
            for n in range(1, 6):
                insert_order(conn, customer.pk, 10)
                wait_until(
                    lambda n=n: totals_of(customer.pk) == (n, Decimal(10 * n)),
                    message=f"write {n} in the view",
                )
    finally:
        conn.close()
    logs = fetch(
        "SELECT DISTINCT trigger FROM live_matview_materializedviewrefreshlog "
        "WHERE view_name = 'testapp_customertotals'"
    )
    assert ("worker",) in logs


def test_once_for_cron():
    customer = Customer.objects.create(name="Ada")
    conn = raw_connection()
    try:
        insert_order(conn, customer.pk, 5)
    finally:
        conn.close()
    out = subprocess.run(
        [sys.executable, "-m", "django", "live_matview_worker", "--once"],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url(),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert totals_of(customer.pk) == (1, Decimal(5))
    assert fetch("SELECT count(*) FROM live_matview_dirtymark") == [(0,)]


def test_sigterm_stops_cleanly():
    with workers(1, "--interval", "0.2") as (proc,):
        wait_until(
            lambda: "worker on database" in (proc.stdout.readline() or ""), message="worker start"
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "worker stopped" in proc.stdout.read()


SLOW_REFRESHES = (
    "FROM pg_stat_activity WHERE datname = current_database() "  # other suites share the server
    "AND wait_event = 'PgSleep' AND query LIKE '%%live_matview_refresh(%%slowview%%'"
)


def test_killed_mid_refresh_another_worker_completes_it():
    customer = Customer.objects.create(name="Ada")
    # Far longer than the test: the REFRESH is still running when the worker is killed,
    # however slow the machine, and it is ended below.
    SleepSetting.objects.create(seconds=600)
    conn = raw_connection()
    try:
        with workers(1, "--interval", "0.2") as (first,):
            insert_order(conn, customer.pk, 1)
            # The worker is inside SlowView's refresh when its call shows in pg_stat_activity.
            wait_until(
                lambda: fetch(f"SELECT count(*) {SLOW_REFRESHES}") == [(1,)],
                message="SlowView refresh running",
            )
            first.kill()
            first.wait(timeout=30)
        # The server notices a dead client only when it next writes to it, not inside
        # pg_sleep: end the orphaned REFRESH as it eventually would, which rolls it back.
        fetch(f"SELECT pg_terminate_backend(pid) {SLOW_REFRESHES}")
        wait_until(
            lambda: fetch(f"SELECT count(*) {SLOW_REFRESHES}") == [(0,)],
            message="the killed worker's REFRESH ended",
        )
        # The killed refresh rolled back: its marks are still there.
        assert (
            fetch(
                "SELECT count(*) FROM live_matview_dirtymark WHERE view_name = 'testapp_slowview'"
            )[0][0]
            >= 1
        )
        SleepSetting.objects.update(seconds=0)
        with workers(1, "--interval", "0.2"):
            wait_until(lambda: SlowView.objects.count() == 1, message="SlowView refreshed")
    finally:
        conn.close()


def test_many_workers_many_writers():
    """3 workers, 4 writer processes: afterwards every view equals its query and no view
    was ever refreshed by two workers at the same time."""
    customers = [Customer.objects.create(name=f"c{n}").pk for n in range(8)]
    writer_code = (
        "import sys, random, psycopg2\n"
        "conn = psycopg2.connect(sys.argv[1])\n"
        "rnd = random.Random(int(sys.argv[2]))\n"
        "ids = [int(x) for x in sys.argv[3].split(',')]\n"
        "for n in range(150):\n"
        "    with conn, conn.cursor() as c:\n"
        "        c.execute('INSERT INTO testapp_order (customer_id, amount, created) '\n"
        "                  'VALUES (%s, %s, now())', [rnd.choice(ids), rnd.randint(1, 50)])\n"
        "conn.close()\n"
    )
    url = database_url().replace("postgresql://", "postgresql://", 1)
    with workers(3, "--interval", "0.2"):
        writers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    writer_code,
                    url,
                    str(seed),
                    ",".join(map(str, customers[seed::4])),
                ]
            )
            for seed in range(4)
        ]
        for writer in writers:
            assert writer.wait(timeout=300) == 0
        wait_until(
            lambda: fetch("SELECT count(*) FROM live_matview_dirtymark") == [(0,)],
            timeout=120,
            message="all marks drained",
        )
    assert_fresh(CustomerTotals)
    overlaps = fetch(
        """
        SELECT a.view_name, count(*) FROM live_matview_materializedviewrefreshlog a
        JOIN live_matview_materializedviewrefreshlog b
          ON a.view_name = b.view_name AND a.id < b.id
         AND a.started_at < b.updated_at AND b.started_at < a.updated_at
        WHERE a.trigger = 'worker' AND b.trigger = 'worker'
        GROUP BY a.view_name
        """
    )
    assert overlaps == []
    worker_refreshes = fetch(
        "SELECT count(*) FROM live_matview_materializedviewrefreshlog WHERE trigger = 'worker'"
    )[0][0]
    assert 0 < worker_refreshes < 600  # coalesced: far fewer than the 600 writes


def test_status_of_views_is_visible(capsys):
    call_command("live_matview_worker", "--once", verbosity=0)
    assert "refreshed" in capsys.readouterr().out


def test_worker_survives_a_database_restart(server_dir):
    """On its own embedded server, which the test stops and starts under the worker."""
    import psycopg2

    from live_matview import embedded

    data_dir = server_dir
    server = embedded.start(data_dir)
    try:
        url, env = migrated_database(server, "restart_test")

        def orders_in_view(expected: int) -> bool:
            try:
                conn = psycopg2.connect(url)
            except psycopg2.OperationalError:
                return False
            try:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT coalesce(sum(orders), 0) FROM testapp_customertotals")
                    return cursor.fetchone()[0] == expected
            finally:
                conn.close()

        def write_order() -> None:
            conn = psycopg2.connect(url)
            try:
                with conn, conn.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO testapp_customer (name) VALUES ('x') ON CONFLICT DO NOTHING"
                    )
                    cursor.execute(
                        "INSERT INTO testapp_order (customer_id, amount, created) "
                        "SELECT min(id), 1, now() FROM testapp_customer"
                    )
            finally:
                conn.close()

        with workers(1, "--interval", "0.3", url=url) as (worker,):
            output = follow(worker)
            write_order()
            wait_until(lambda: orders_in_view(1), message="first write refreshed")
            embedded.stop(data_dir)
            wait_until(
                lambda: any("Database unavailable" in line for line in output),
                message="the worker noticing the outage",
            )
            assert worker.poll() is None, "the worker died with the database"
            server = embedded.start(data_dir)
            write_order()
            wait_until(lambda: orders_in_view(2), timeout=60, message="catch-up after restart")
            assert worker.poll() is None
    finally:
        embedded.stop(data_dir)
