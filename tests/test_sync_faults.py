"""The view sync under faults and in plain ``migrate``: writers during a sync, the sync
lock behind a pooler, plain views under "auto" views, adopted views' tracking rows."""

from __future__ import annotations

import io
import logging
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test.utils import override_settings

from live_matview import conf, migrate_hooks, processor
from live_matview.exceptions import SyncError
from live_matview.management.commands.migrate_with_views import Command
from live_matview.models import DirtyMark, ManagedView
from live_matview.schema.lock import holding_sync_lock, lock_sync
from live_matview.schema.sync import SYNC_LOCK_KEY
from tests.helpers import (
    assert_fresh,
    execute,
    fetch,
    raw_connection,
    view_differences,
    view_oid,
    wait_until,
)
from tests.testapp.models import BigSpenders, Customer, CustomerTotals, ItemSales, Order

LOCK_ROWS = (
    "SELECT pid, granted FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 "
    "AND classid = %s AND objid = %s "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@pytest.fixture(autouse=True)
def _forget_caches_built_in_rolled_back_transactions():
    """A sync inside a test's transaction never commits, so its on-commit cache reset never
    runs: drop what this process cached from that transaction's state."""
    yield
    from live_matview.processor import forget_caches

    forget_caches()


def lock_rows():
    return fetch(LOCK_ROWS, [conf.advisory_lock_namespace() + 1, SYNC_LOCK_KEY])


def run(command="migrate_with_views", *args, **options) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def in_thread(target):
    """Run ``target`` in a thread with its own Django connections; returns (thread, outcome)."""
    outcome: dict = {}

    def body():
        try:
            outcome["result"] = target()
        except BaseException as exc:  # reported by the test's assertions
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=body)
    thread.start()
    return thread, outcome


# 10.11: the sync lock cannot leak through a pooler and never waits without bound.


@pytest.fixture
def lock_holder():
    """Another deploy: a connection of its own that holds the sync lock."""
    holder = raw_connection()
    holder.autocommit = True
    with holder.cursor() as cursor:
        cursor.execute("SET application_name = 'the-other-deploy'")
        cursor.execute(
            "SELECT pg_advisory_lock(%s, %s)", [conf.advisory_lock_namespace() + 1, SYNC_LOCK_KEY]
        )
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    yield pid
    holder.close()


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["migrate_with_views", "migrate"])
@override_settings(LIVE_MATVIEW_SYNC_LOCK_TIMEOUT=0.3)
def test_a_held_lock_fails_the_command_naming_the_holder(lock_holder, command):
    execute("DROP MATERIALIZED VIEW testapp_bigspenders")
    with pytest.raises(CommandError) as excinfo:
        run(command)
    message = str(excinfo.value)
    assert "still holds the lock after 0.3 s (LIVE_MATVIEW_SYNC_LOCK_TIMEOUT)" in message
    assert f"pid {lock_holder} (application_name 'the-other-deploy'" in message
    assert "pg_terminate_backend" in message
    assert view_oid(BigSpenders) is None


@pytest.mark.django_db(transaction=True)
def test_the_lock_is_held_by_a_transaction_and_ends_with_it():
    """A session lock survives the end of its transaction, so behind PgBouncer in
    transaction mode it stayed on a pooled server connection for good. Ours goes with the
    transaction: rolling it back, without any unlock, frees it."""
    other = connections.create_connection("default")
    try:
        other.set_autocommit(False)
        lock_sync(other)
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        assert lock_rows() == [(pid, True)]
        other.rollback()
        assert lock_rows() == []
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_migrate_with_views_never_holds_the_lock_on_the_migrating_connection(monkeypatch):
    """While migrations run, the lock is held by a transaction of another connection, so
    a migration's commit cannot end it, and nothing on the connection a pooler shares
    outlives the command."""
    seen = {}
    original = processor.sync_views

    def spy(using):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            seen["own_pid"] = cursor.fetchone()[0]
        seen["holders"] = lock_rows()
        return original(using)

    monkeypatch.setattr("live_matview.management.commands.migrate_with_views.sync_views", spy)
    run()
    assert len(seen["holders"]) == 1
    holder_pid, granted = seen["holders"][0]
    assert granted
    assert holder_pid != seen["own_pid"]
    assert lock_rows() == []


@pytest.mark.django_db(transaction=True)
def test_holding_the_lock_ends_when_the_holder_dies():
    with holding_sync_lock("default"):
        ((pid, _granted),) = lock_rows()
        execute("SELECT pg_terminate_backend(%s)", [pid])
        wait_until(lambda: lock_rows() == [], message="the lock to go with its session")
    assert lock_rows() == []


# 10.2: views created while clients write miss nothing.


def _make_new(*models):
    """Make views look newly declared: dropped, and absent from the database's source map."""
    for model in reversed(models):
        execute(f"DROP MATERIALIZED VIEW {model._meta.db_table}")
    names = [model._meta.db_table for model in models]
    execute("DELETE FROM live_matview_source WHERE view_name = ANY(%s)", [names])
    ManagedView.objects.filter(view_name__in=names).delete()


def _raw_orders(customer_id: int, count: int, amount: int = 7) -> None:
    """Another client (psql, another service) writes, in autocommit."""
    client = raw_connection()
    client.autocommit = True
    try:
        with client.cursor() as cursor:
            for _ in range(count):
                cursor.execute(
                    "INSERT INTO testapp_order (customer_id, amount, created) "
                    "VALUES (%s, %s, now())",
                    [customer_id, amount],
                )
    finally:
        client.close()


@pytest.mark.django_db(transaction=True)
def test_writes_committed_while_a_sync_creates_views_are_not_lost():
    customers = [Customer.objects.create(name=f"c{i}").pk for i in range(4)]
    Order.objects.create(customer_id=customers[0], amount=500)
    _make_new(CustomerTotals, BigSpenders)
    # Hold the sync after its CREATEs, before its commit: it waits to record the views.
    blocker = raw_connection()
    try:
        with blocker.cursor() as cursor:
            cursor.execute("LOCK TABLE live_matview_managedview IN EXCLUSIVE MODE")
        thread, outcome = in_thread(lambda: processor.sync_views("default"))
        wait_until(
            lambda: (
                fetch(
                    "SELECT 1 FROM pg_locks WHERE NOT granted "
                    "AND relation = 'live_matview_managedview'::regclass AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
                or not thread.is_alive()
            ),
            message="the sync to wait on the blocker",
        )
        assert thread.is_alive(), outcome
        writers = [
            threading.Thread(target=_raw_orders, args=(customer, 10, 30)) for customer in customers
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        blocker.rollback()
    finally:
        blocker.close()
    thread.join(timeout=120)
    assert "error" not in outcome, outcome
    assert view_differences(CustomerTotals) == (0, 0)
    assert_fresh(BigSpenders)
    assert BigSpenders.objects.count() == 4
    assert not DirtyMark.objects.filter(view_name__in=["testapp_customertotals"]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_transaction_writing_across_the_sync_commit_is_waited_for(caplog):
    customer = Customer.objects.create(name="a").pk
    _make_new(CustomerTotals, BigSpenders)
    writer = raw_connection()  # not autocommit: its transaction stays open
    try:
        with writer.cursor() as cursor:
            cursor.execute(
                "INSERT INTO testapp_order (customer_id, amount, created) VALUES (%s, 200, now())",
                [customer],
            )
        waiting = threading.Event()

        class Seen(logging.Handler):
            def emit(self, record):
                if "Waiting for 1 transaction(s)" in record.getMessage():
                    waiting.set()

        handler = Seen()
        logging.getLogger("live_matview.processor").addHandler(handler)
        try:
            thread, outcome = in_thread(lambda: processor.sync_views("default"))
            assert waiting.wait(timeout=60), outcome
            assert thread.is_alive()
            writer.commit()
            thread.join(timeout=120)
        finally:
            logging.getLogger("live_matview.processor").removeHandler(handler)
    finally:
        writer.close()
    assert "error" not in outcome, outcome
    assert list(CustomerTotals.objects.values_list("total", flat=True)) == [200]
    assert_fresh(CustomerTotals, BigSpenders)


# 11.3: plain migrate brings the views in line, once, unless turned off.


@pytest.mark.django_db
def test_plain_migrate_creates_missing_views_once(monkeypatch):
    calls = []
    original = processor.sync_views
    monkeypatch.setattr(
        migrate_hooks, "sync_views", lambda using: calls.append(using) or original(using)
    )
    execute("DROP MATERIALIZED VIEW testapp_bigspenders")
    output = run("migrate")
    assert "Materialized views:" in output
    assert "create   testapp_bigspenders" in output
    assert view_oid(BigSpenders) is not None
    assert calls == ["default"]
    assert "No changes." in run("migrate")


@pytest.mark.django_db
@override_settings(LIVE_MATVIEW_SYNC_ON_MIGRATE=False)
def test_plain_migrate_leaves_views_alone_when_turned_off():
    execute("DROP MATERIALIZED VIEW testapp_bigspenders")
    assert "Materialized views" not in run("migrate")
    assert view_oid(BigSpenders) is None


@pytest.mark.django_db
@pytest.mark.parametrize("options", [{"plan": True}, {"check_unapplied": True}])
def test_migrate_plan_and_check_do_not_sync(options):
    execute("DROP MATERIALIZED VIEW testapp_bigspenders")
    run("migrate", **options)
    assert view_oid(BigSpenders) is None


@pytest.mark.django_db
def test_flush_does_not_sync(monkeypatch):
    """Test cases flush between tests; post_migrate then comes without a plan."""
    calls = []
    monkeypatch.setattr(migrate_hooks, "sync_views", lambda using: calls.append(using))
    call_command("flush", interactive=False, verbosity=0)
    assert calls == []


@pytest.mark.django_db
def test_plain_migrate_fails_naming_the_broken_view(sql_file):
    execute("DROP MATERIALIZED VIEW testapp_itemsales")
    sql_file.write_text("SELECT sku, no_such_column FROM testapp_item")
    with pytest.raises(CommandError) as excinfo:
        run("migrate")
    assert "testapp.ItemSales" in str(excinfo.value)
    assert str(sql_file) in str(excinfo.value)


@pytest.mark.django_db(databases=["default", "other"])
def test_plain_migrate_syncs_the_database_it_migrates():
    with connections["other"].cursor() as cursor:
        cursor.execute("DROP MATERIALIZED VIEW testapp_bigspenders")
    execute("DROP MATERIALIZED VIEW testapp_bigspenders")
    assert "create   testapp_bigspenders" in run("migrate", database="other")
    with connections["other"].cursor() as cursor:
        cursor.execute("SELECT to_regclass('testapp_bigspenders')")
        assert cursor.fetchone()[0] is not None
    assert view_oid(BigSpenders) is None


@pytest.mark.django_db(transaction=True)
def test_plain_migrate_alters_a_column_views_read():
    customer = Customer.objects.create(name="a")
    Order.objects.create(customer=customer, amount=150)
    CustomerTotals.refresh()
    try:
        run("migrate", "testapp", "0001")
        assert fetch(
            "SELECT numeric_precision FROM information_schema.columns "
            "WHERE table_name = 'testapp_order' AND column_name = 'amount'"
        ) == [(10,)]
        assert view_oid(CustomerTotals) is not None
    finally:
        run("migrate", "testapp")
    assert list(BigSpenders.objects.values_list("total", flat=True)) == [150]


# 10.4: "auto" over a plain view follows it down to its tables.


@pytest.mark.django_db(transaction=True)
def test_auto_view_over_a_plain_view_refreshes_on_writes_to_its_tables(sql_file):
    from tests.testapp.models import Item

    execute("CREATE VIEW plain_item_quantities AS SELECT sku, quantity FROM testapp_item")
    try:
        sql_file.write_text(
            "SELECT sku, sum(quantity)::integer AS quantity FROM plain_item_quantities GROUP BY sku"
        )
        run()
        order = Order.objects.create(customer=Customer.objects.create(name="a"), amount=1)
        Item.objects.create(order=order, sku="A1", quantity=3)  # autocommit: on_commit
        assert list(ItemSales.objects.values_list("sku", "quantity")) == [("A1", 3)]
        assert_fresh(ItemSales)
    finally:
        sql_file.write_text(
            "SELECT sku, sum(quantity)::integer AS quantity FROM testapp_item GROUP BY sku"
        )
        run()
        execute("DROP VIEW plain_item_quantities")


# 11.7: the old library's tracking row of an adopted view.


@pytest.mark.django_db
def test_adopted_view_whose_model_is_gone_is_marked_deleted_in_the_old_table():
    execute(
        "CREATE TABLE django_materialized_view_materializedviewmigrations ("
        "id bigserial PRIMARY KEY, applied timestamptz DEFAULT now(), app varchar(255), "
        "view_name varchar(255), hash varchar(255), deleted boolean DEFAULT false)"
    )
    execute(
        "INSERT INTO django_materialized_view_materializedviewmigrations (app, view_name, hash)"
        " VALUES ('testapp', 'retired', 'x')"
    )
    execute("CREATE MATERIALIZED VIEW testapp_retired AS SELECT 1 AS one")
    # Adopted earlier: recorded as ours too.
    ManagedView.objects.create(
        view_name="testapp_retired", app_label="testapp", model_name="retired"
    )
    assert "drop     testapp_retired: its model is gone" in run()
    assert fetch(
        "SELECT deleted FROM django_materialized_view_materializedviewmigrations "
        "WHERE view_name = 'retired'"
    ) == [(True,)]


# 11.9 (the sync's half): a SQL-file view without a primary-key field.


@pytest.mark.django_db
def test_sql_file_view_without_primary_key_field_says_to_mark_one(sql_file, monkeypatch):
    from django.db import models
    from django.test.utils import isolate_apps

    from live_matview import MaterializedViewModel
    from live_matview.views import query

    with isolate_apps("tests.testapp"):
        view = type(
            "PkLess",
            (MaterializedViewModel,),
            {
                "__module__": "tests.testapp.models",
                "create_pkey_index": True,
                "sku": models.CharField(max_length=20),
            },
        )
    monkeypatch.setattr(query, "sql_file_candidates", lambda model: [sql_file])
    sql_file.write_text("SELECT DISTINCT sku FROM testapp_item")
    from live_matview.schema.planning import make_plan
    from live_matview.schema.sync import apply_plan

    plan = make_plan("default", [view])
    with (
        connection.cursor() as cursor,
        pytest.raises(SyncError, match="Mark the field that identifies a row with primary_key"),
    ):
        apply_plan(cursor, connection, plan)


# 11.11: migrate_with_views --help describes its own --check and --plan.


def test_help_describes_check_and_plan_for_views():
    text = " ".join(
        Command().create_parser("manage.py", "migrate_with_views").format_help().split()
    )
    assert "materialized view, index or capture trigger would change; changes nothing" in text
    assert "materialized view changes that would follow" in text
    assert "LIVE_MATVIEW_SYNC_LOCK_TIMEOUT" in text
