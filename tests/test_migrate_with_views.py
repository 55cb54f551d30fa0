"""``migrate_with_views``: SPEC section 2, against the real database."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count, Sum, TextField
from django.db.models.functions import Cast

from live_matview import conf
from live_matview.models import ManagedView
from live_matview.schema.sync import SYNC_LOCK_KEY
from live_matview.views.registry import view_models
from tests.helpers import (
    capture_trigger_names,
    execute,
    fetch,
    matview_definition,
    view_oid,
    view_oids,
)
from tests.testapp.models import (
    BigSpenders,
    Customer,
    CustomerTotals,
    IndexedOrders,
    ItemSales,
    MixedCaseView,
    Order,
    QuotedNameView,
    SchemaView,
)

pytestmark = pytest.mark.django_db


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command("migrate_with_views", *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def changed_query():
    return (
        Order.objects.filter(amount__gt=0)
        .values("customer_id")
        .annotate(orders=Count("id"), total=Sum("amount"))
    )


def test_fixture_created_every_view():
    assert all(view_oids(view_models()).values())


def test_second_run_changes_nothing():
    before = view_oids(view_models())
    records = list(ManagedView.objects.values_list("view_name", "updated_at"))
    output = run()
    assert "No changes." in output
    assert view_oids(view_models()) == before
    assert list(ManagedView.objects.values_list("view_name", "updated_at")) == records


def test_changed_query_recreates_view_and_its_dependents(monkeypatch):
    before = view_oids(view_models())
    monkeypatch.setattr(CustomerTotals, "get_query_from_queryset", staticmethod(changed_query))
    output = run()
    assert "recreate testapp_customertotals (testapp.CustomerTotals): definition changed" in output
    assert "recreate testapp_bigspenders" in output
    after = view_oids(view_models())
    assert after[CustomerTotals] != before[CustomerTotals]
    assert after[BigSpenders] != before[BigSpenders]
    unchanged = set(view_models()) - {CustomerTotals, BigSpenders}
    assert all(after[model] == before[model] for model in unchanged)
    assert "amount > " in matview_definition(CustomerTotals)
    # The index comes back with the view, so CONCURRENTLY still works.
    assert CustomerTotals.refresh().concurrently is True


def test_cosmetic_sql_change_is_not_a_rebuild(sql_file):
    before = view_oid(ItemSales)
    sql_file.write_text(
        "/* reformatted */\nselect   SKU,\n\tsum(QUANTITY)::int as quantity from testapp_item\n"
        "group by sku\n;\n"
    )
    assert "No changes." in run()
    assert view_oid(ItemSales) == before


def test_literal_change_is_detected(sql_file):
    # django-materialized-view's hash ignored the case of string literals.
    sql_file.write_text(
        "SELECT sku, sum(quantity)::integer AS quantity FROM testapp_item "
        "WHERE sku LIKE 'a%' GROUP BY sku"
    )
    run()
    assert "'a%'" in matview_definition(ItemSales)
    sql_file.write_text(
        "SELECT sku, sum(quantity)::integer AS quantity FROM testapp_item "
        "WHERE sku LIKE 'A%' GROUP BY sku"
    )
    assert "recreate testapp_itemsales" in run()
    assert "'A%'" in matview_definition(ItemSales)


def test_broken_sql_file_changes_nothing_and_names_model_and_file(sql_file, monkeypatch):
    monkeypatch.setattr(CustomerTotals, "get_query_from_queryset", staticmethod(changed_query))
    before = {model: (view_oid(model), matview_definition(model)) for model in view_models()}
    sql_file.write_text("SELECT sku, no_such_column FROM testapp_item")
    with pytest.raises(CommandError) as excinfo:
        run()
    message = str(excinfo.value)
    assert "testapp.ItemSales" in message
    assert str(sql_file) in message
    assert "no_such_column" in message
    after = {model: (view_oid(model), matview_definition(model)) for model in view_models()}
    assert after == before


def test_failure_after_drops_rolls_everything_back(monkeypatch):
    """The parent is dropped and recreated, then its child fails to build: the whole
    sync is undone, both views are as they were."""

    def total_as_text():
        return Order.objects.values("customer_id").annotate(
            orders=Count("id"), total=Cast(Sum("amount"), output_field=TextField())
        )

    monkeypatch.setattr(CustomerTotals, "get_query_from_queryset", staticmethod(total_as_text))
    before = {model: (view_oid(model), matview_definition(model)) for model in view_models()}
    with pytest.raises(CommandError) as excinfo:
        run()
    assert "testapp.BigSpenders" in str(excinfo.value)
    assert "Nothing was changed" in str(excinfo.value)
    after = {model: (view_oid(model), matview_definition(model)) for model in view_models()}
    assert after == before


def test_view_not_managed_by_us_is_never_dropped():
    execute("CREATE MATERIALIZED VIEW handmade AS SELECT 1 AS one")
    run()
    assert fetch("SELECT count(*) FROM pg_matviews WHERE matviewname = 'handmade'") == [(1,)]


def test_foreign_reader_stops_a_recreate(monkeypatch):
    execute("CREATE VIEW report_on_totals AS SELECT * FROM testapp_customertotals")
    monkeypatch.setattr(CustomerTotals, "get_query_from_queryset", staticmethod(changed_query))
    before = view_oid(CustomerTotals)
    with pytest.raises(CommandError) as excinfo:
        run()
    assert "report_on_totals" in str(excinfo.value)
    assert view_oid(CustomerTotals) == before


def test_view_whose_model_is_gone_is_dropped():
    execute("CREATE MATERIALIZED VIEW testapp_gone AS SELECT 1 AS one")
    ManagedView.objects.create(view_name="testapp_gone", app_label="testapp", model_name="gone")
    output = run()
    assert "drop     testapp_gone: its model is gone" in output
    assert fetch("SELECT count(*) FROM pg_matviews WHERE matviewname = 'testapp_gone'") == [(0,)]
    assert not ManagedView.objects.filter(view_name="testapp_gone").exists()


def test_views_of_django_materialized_view_are_adopted_not_rebuilt():
    """A project switching libraries: its views exist, recorded in the old library's table."""
    execute(
        "CREATE TABLE django_materialized_view_materializedviewmigrations ("
        "id bigserial PRIMARY KEY, applied timestamptz DEFAULT now(), app varchar(255), "
        "view_name varchar(255), hash varchar(255), deleted boolean DEFAULT false)"
    )
    execute(
        "INSERT INTO django_materialized_view_materializedviewmigrations (app, view_name, hash)"
        " VALUES ('testapp', 'customertotals', 'x'), ('testapp', 'oldview', 'y')"
    )
    execute("CREATE MATERIALIZED VIEW testapp_oldview AS SELECT 1 AS one")
    ManagedView.objects.all().delete()
    before = view_oids(view_models())
    output = run()
    assert "adopt    testapp_customertotals" in output
    assert "drop     testapp_oldview" in output
    assert view_oids(view_models()) == before
    assert ManagedView.objects.count() == len(view_models())
    assert fetch(
        "SELECT view_name, deleted FROM django_materialized_view_materializedviewmigrations "
        "ORDER BY view_name"
    ) == [("customertotals", False), ("oldview", True)]
    assert "No changes." in run()


def test_index_change_reindexes_without_rebuilding(monkeypatch):
    before = view_oid(IndexedOrders)
    record = ManagedView.objects.get(view_name="testapp_indexedorders")
    ManagedView.objects.filter(pk=record.pk).update(index_digest="stale")
    output = run()
    assert "reindex  testapp_indexedorders" in output
    assert view_oid(IndexedOrders) == before
    names = {
        row[0]
        for row in fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'testapp_indexedorders'"
        )
    }
    assert names == {"indexedorders_customer", "indexedorders_order_uniq"}


def test_missing_view_is_recreated():
    execute("DROP MATERIALIZED VIEW testapp_bigspenders")
    assert "create   testapp_bigspenders" in run()
    assert view_oid(BigSpenders) is not None


def test_identifiers_are_quoted_by_the_driver():
    assert set(
        fetch(
            "SELECT schemaname, matviewname FROM pg_matviews "
            "WHERE matviewname IN ('Mixed Case View', 'it\"s a view', 'customer_ids')"
        )
    ) == {("reporting", "customer_ids"), ("public", "Mixed Case View"), ("public", 'it"s a view')}
    Customer.objects.create(name="x")
    for model in (MixedCaseView, QuotedNameView, SchemaView):
        model.refresh()
        assert model.objects.count() == 1


def test_check_and_plan_change_nothing(monkeypatch):
    run("--check")  # nothing to do: no SystemExit
    monkeypatch.setattr(CustomerTotals, "get_query_from_queryset", staticmethod(changed_query))
    before = view_oids(view_models())
    with pytest.raises(SystemExit) as excinfo:
        run("--check")
    assert excinfo.value.code == 1
    output = run("--plan")
    assert "Planned operations:" in output  # migrate's own plan
    assert "recreate testapp_customertotals" in output
    assert view_oids(view_models()) == before


def test_migrate_options_are_forwarded():
    output = run("testapp", "--database", "default", "--noinput", "--fake")
    assert "No migrations to apply." in output
    assert run(verbosity=0) == ""


@pytest.mark.django_db(transaction=True)
def test_column_type_change_used_by_views_migrates():
    customer = Customer.objects.create(name="a")
    Order.objects.create(customer=customer, amount=150)
    CustomerTotals.refresh()
    try:
        output = run("testapp", "0001")
        assert "again in the same migration" in output
        # Nothing was missing afterwards (earlier tests' flushes may leave views to adopt).
        assert "create " not in output.split("Materialized views:")[1]
        assert fetch(
            "SELECT numeric_precision FROM information_schema.columns "
            "WHERE table_name = 'testapp_order' AND column_name = 'amount'"
        ) == [(10,)]
        assert all(view_oids(view_models()).values())
    finally:
        run("testapp")
    assert fetch(
        "SELECT numeric_precision FROM information_schema.columns "
        "WHERE table_name = 'testapp_order' AND column_name = 'amount'"
    ) == [(12,)]
    assert list(BigSpenders.objects.values_list("customer_id", "total")) == [(customer.pk, 150)]


@pytest.mark.django_db(transaction=True)
def test_views_dropped_for_a_column_change_survive_a_failed_sync(sql_file):
    """The guard creates the views again inside the migration, so a sync that fails
    afterwards (here: another view's SQL is broken) leaves no view missing."""
    Order.objects.create(customer=Customer.objects.create(name="a"), amount=150)
    sql_file.write_text("SELECT broken FROM nowhere")
    try:
        with pytest.raises(CommandError, match="testapp.ItemSales"):
            run("testapp", "0001")
        assert all(view_oids(view_models()).values())
        assert list(CustomerTotals.objects.values_list("total", flat=True)) == [150]
    finally:
        sql_file.write_text(
            "SELECT sku, sum(quantity)::integer AS quantity FROM testapp_item GROUP BY sku"
        )
        run("testapp")
    assert all(view_oids(view_models()).values())


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_wait_for_each_other(django_db_blocker):
    """A second deploy blocks on the advisory lock until the first releases it."""
    from django.db import connections

    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_lock(%s, %s)",
                [conf.advisory_lock_namespace() + 1, SYNC_LOCK_KEY],
            )
        outcome = {}

        def deploy():
            try:
                outcome["output"] = run()
            except BaseException as exc:  # pragma: no cover  (reported by the assert)
                outcome["error"] = exc
            finally:
                connections.close_all()

        thread = threading.Thread(target=deploy)
        thread.start()
        deadline = time.monotonic() + 30
        while not fetch(  # advisory locks are per database; other suites share the server
            "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s AND objid = %s",
            [conf.advisory_lock_namespace() + 1, SYNC_LOCK_KEY],
        ):
            assert time.monotonic() < deadline, "the second run never waited on the lock"
            assert thread.is_alive(), outcome
            time.sleep(0.02)
        assert thread.is_alive()
        with holder.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_unlock(%s, %s)",
                [conf.advisory_lock_namespace() + 1, SYNC_LOCK_KEY],
            )
        thread.join(timeout=60)
        assert not thread.is_alive()
        assert "Materialized views:" in outcome.get("output", ""), outcome
    finally:
        holder.close()


@pytest.mark.django_db(transaction=True)
def test_command_line_exit_code_and_message():
    """Run as a user would: a process, its exit code and stderr. The view's query breaks
    because a column it reads was renamed behind the library's back."""
    execute("ALTER TABLE testapp_item RENAME COLUMN quantity TO qty")
    settings = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://{}@/{}?host={}&port={}".format(
            settings["USER"], settings["NAME"], settings["HOST"] or "localhost", settings["PORT"]
        ),
    }
    before = view_oid(ItemSales)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "django", "migrate_with_views", "--settings=tests.settings"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        execute("ALTER TABLE testapp_item RENAME COLUMN qty TO quantity")
    assert result.returncode == 1
    assert "testapp.ItemSales" in result.stderr
    assert "itemsales.sql" in result.stderr
    assert 'column "quantity" does not exist' in result.stderr
    assert view_oid(ItemSales) == before


def test_missing_capture_trigger_is_reported_checked_and_reinstalled():
    (table, name), *_ = [row for row in capture_trigger_names() if row[0] == "testapp_item"]
    execute(f'DROP TRIGGER "{name}" ON {table}')
    with pytest.raises(SystemExit):
        run("--check")
    output = run()
    assert "capture  capture trigger installed on testapp.Item" in output
    assert (table, name) in capture_trigger_names()
    assert "No changes." in run()


def test_query_missing_a_model_column_is_an_error(sql_file):
    sql_file.write_text("SELECT sku, sum(quantity)::integer AS qty FROM testapp_item GROUP BY sku")
    before = view_oid(ItemSales)
    with pytest.raises(CommandError) as excinfo:
        run()
    message = str(excinfo.value)
    assert "testapp.ItemSales" in message
    assert "returns the columns qty, sku, but the model also reads quantity" in message
    assert view_oid(ItemSales) == before


def test_new_view_missing_a_model_column_is_an_error(sql_file):
    execute("DROP MATERIALIZED VIEW testapp_itemsales")
    sql_file.write_text("SELECT sku FROM testapp_item")
    with pytest.raises(CommandError, match="also reads quantity"):
        run()
