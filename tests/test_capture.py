"""Writes of every kind make the views that depend on them fresh right after commit.

These tests commit for real (``transactional_db``): on-commit refreshes only happen then.
Each runs in both capture modes unless the mode is the point.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext, override_settings

from live_matview.testing import capture_refreshes
from tests.helpers import assert_fresh, execute, fetch, raw_connection
from tests.testapp.models import (
    BigSpenders,
    Customer,
    CustomerTotals,
    Item,
    ItemSales,
    Order,
    OrderItemStats,
    OrderTagCounts,
    Tag,
)

pytestmark = pytest.mark.django_db(transaction=True)


def totals():
    return list(CustomerTotals.objects.values_list("customer_id", "orders", "total"))


@pytest.mark.usefixtures("capture_mode")
class TestEachWriteKind:
    def test_save(self, customer):
        with capture_refreshes() as refreshes:
            Order.objects.create(customer=customer, amount=10)
        assert totals() == [(customer.pk, 1, 10)]
        refreshes.assert_refreshed(CustomerTotals, BigSpenders)

    def test_save_in_atomic(self, customer):
        with transaction.atomic():
            Order.objects.create(customer=customer, amount=10)
            Order.objects.create(customer=customer, amount=20)
            assert totals() == []  # not before the commit
        assert totals() == [(customer.pk, 2, 30)]

    def test_queryset_update(self, customer):
        Order.objects.create(customer=customer, amount=10)
        Order.objects.update(amount=F("amount") * 3)
        assert totals() == [(customer.pk, 1, 30)]

    def test_bulk_create_and_bulk_update(self, customer):
        orders = Order.objects.bulk_create(
            [Order(customer=customer, amount=n) for n in range(1, 101)]
        )
        assert totals() == [(customer.pk, 100, 5050)]
        for order in orders:
            order.amount = 1
        Order.objects.bulk_update(orders, ["amount"])
        assert totals() == [(customer.pk, 100, 100)]

    def test_delete_instance_and_queryset(self, customer):
        first = Order.objects.create(customer=customer, amount=10)
        Order.objects.create(customer=customer, amount=20)
        first.delete()
        assert totals() == [(customer.pk, 1, 20)]
        Order.objects.all().delete()
        assert totals() == []

    def test_m2m_changes(self, customer):
        order = Order.objects.create(customer=customer, amount=10)
        tag = Tag.objects.create(name="gift")
        order.tags.add(tag)
        assert list(OrderTagCounts.objects.values_list("order_id", "tags")) == [(order.pk, 1)]
        order.tags.clear()
        assert list(OrderTagCounts.objects.values_list("order_id", "tags")) == [(order.pk, 0)]

    def test_raw_sql_through_django(self, customer):
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO testapp_order (customer_id, amount, created) VALUES (%s, 5, now())",
                [customer.pk],
            )
        assert totals() == [(customer.pk, 1, 5)]
        with connection.cursor() as cursor:
            cursor.execute('update "testapp_order" set amount = 7')
        assert totals() == [(customer.pk, 1, 7)]

    def test_data_modifying_cte(self, customer):
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH c AS (SELECT %s::bigint AS id) INSERT INTO testapp_order "
                "(customer_id, amount, created) SELECT id, 3, now() FROM c",
                [customer.pk],
            )
        assert totals() == [(customer.pk, 1, 3)]

    def test_write_to_a_table_of_an_auto_view(self, customer):
        """``refresh_on = "auto"``: the sources come from the join PostgreSQL records."""
        order = Order.objects.create(customer=customer, amount=1)
        Item.objects.create(order=order, sku="A", quantity=1)
        assert list(OrderItemStats.objects.values_list("customer_id", "items")) == [
            (customer.pk, 1)
        ]
        other = Customer.objects.create(name="Bob")
        Order.objects.filter(pk=order.pk).update(customer=other)  # only the other table
        assert list(OrderItemStats.objects.values_list("customer_id", "items")) == [(other.pk, 1)]
        assert list(ItemSales.objects.values_list("sku", "quantity")) == [("A", 1)]


@pytest.mark.usefixtures("capture_mode")
class TestTransactions:
    def test_rollback_refreshes_nothing(self, customer):
        marks = fetch("SELECT count(*) FROM live_matview_dirtymark")
        with capture_refreshes() as refreshes, pytest.raises(RuntimeError):
            write_then_fail(lambda: Order.objects.create(customer=customer, amount=10))
        assert refreshes.refreshed == []
        assert fetch("SELECT count(*) FROM live_matview_dirtymark") == marks

    def test_rolled_back_savepoint_does_not_count(self, customer):
        order = Order.objects.create(customer=customer, amount=10)
        with capture_refreshes() as refreshes, transaction.atomic():
            Customer.objects.filter(pk=customer.pk).update(name="Ada L.")
            with pytest.raises(RuntimeError):
                write_then_fail(lambda: Item.objects.create(order=order, sku="X"))
        refreshes.assert_refreshed(CustomerTotals, BigSpenders)
        refreshes.assert_not_refreshed(ItemSales, OrderItemStats)

    def test_thousand_writes_over_three_models_refresh_each_view_once(self, customer):
        with capture_refreshes() as refreshes, transaction.atomic():
            for n in range(250):
                order = Order.objects.create(customer=customer, amount=n)
                Item.objects.create(order=order, sku=f"S{n % 7}", quantity=2)
                Customer.objects.filter(pk=customer.pk).update(name=f"Ada {n}")
                order.amount += 1
                order.save()
        refreshes.assert_refreshed(CustomerTotals, ItemSales, BigSpenders, OrderItemStats)
        assert refreshes.order.index("testapp.CustomerTotals") < refreshes.order.index(
            "testapp.BigSpenders"
        )
        assert_fresh(CustomerTotals, ItemSales, BigSpenders, OrderItemStats)

    def test_autocommit_saves_in_deferred_refresh(self, customer):
        from live_matview import deferred_refresh

        with capture_refreshes() as refreshes, deferred_refresh():
            for n in range(200):  # the benchmarks count 1,000 (SPEC §6)
                Order.objects.create(customer=customer, amount=n % 10)
            assert refreshes.refreshed == []
        refreshes.assert_refreshed(CustomerTotals, BigSpenders)
        assert totals() == [(customer.pk, 200, 900)]

    def test_deferred_refresh_is_a_nestable_decorator(self, customer):
        from live_matview import deferred_refresh

        @deferred_refresh()
        def write_twice():
            with deferred_refresh():
                Order.objects.create(customer=customer, amount=1)
            Order.objects.create(customer=customer, amount=2)

        with capture_refreshes() as refreshes:
            write_twice()
        refreshes.assert_refreshed(CustomerTotals)
        assert totals() == [(customer.pk, 2, 3)]

    def test_no_extra_query_per_statement(self, customer):
        Order.objects.create(customer=customer, amount=1)  # warms the source map
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            for n in range(20):
                Order.objects.create(customer=customer, amount=n)
            statements = [q["sql"] for q in queries.captured_queries if q["sql"] != "BEGIN"]
        signals_marks = 3 if capture_mode_is("signals") else 0
        # The 20 INSERTs, and in signals mode the one mark insert of the transaction (in a
        # savepoint of its own): nothing grows with the number of writes.
        assert len(statements) == 20 + signals_marks


def write_then_fail(write) -> None:
    with transaction.atomic():
        write()
        raise RuntimeError("roll back")


def capture_mode_is(mode: str) -> bool:
    from live_matview import conf

    return conf.capture() == mode


def test_view_on_view_refreshes_after_its_parent(customer):
    with capture_refreshes() as refreshes:
        Order.objects.create(customer=customer, amount=500)
    assert BigSpenders.refresh_on == ()  # it inherits CustomerTotals' sources
    order = refreshes.order
    assert order.index("testapp.CustomerTotals") < order.index("testapp.BigSpenders")
    refreshes.assert_refreshed(CustomerTotals, BigSpenders)
    assert list(BigSpenders.objects.values_list("customer_id", "total")) == [(customer.pk, 500)]


def test_write_from_another_client_is_drained(customer):
    """A write that never went through Django leaves marks; refresh_dirty() uses them."""
    import psycopg2

    from live_matview import refresh_dirty

    settings = connection.settings_dict
    other = psycopg2.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
    )
    try:
        with other, other.cursor() as cursor:
            cursor.execute(
                "INSERT INTO testapp_order (customer_id, amount, created) VALUES (%s, 9, now())",
                [customer.pk],
            )
    finally:
        other.close()
    assert totals() == []
    marked = {row[0] for row in fetch("SELECT view_name FROM live_matview_dirtymark")}
    # The readers of the table; the views built on them are marked by their refresh.
    assert marked == {
        "testapp_customertotals",
        "testapp_ordertagcounts",
        "testapp_orderitemstats",
        "testapp_slowview",
    }
    result = refresh_dirty()
    assert {log.view_name for log in result.refreshed} >= {
        "testapp_customertotals",
        "testapp_bigspenders",
    }
    assert totals() == [(customer.pk, 1, 9)]
    assert fetch("SELECT count(*) FROM live_matview_dirtymark") == [(0,)]


# The back-off retry (5 s by default) must not fire inside the test: on a loaded machine it
# could, and fail again, before the assertions on the failure's state (test_modes tests it).
@override_settings(LIVE_MATVIEW_RETRY_BASE=3600.0)
def test_failing_refresh_never_breaks_the_committed_write(customer):
    order = Order.objects.create(customer=customer, amount=1)
    with capture_refreshes() as refreshes, transaction.atomic():
        Order.objects.create(customer=customer, amount=2)
        Item.objects.create(order=order, sku="X", quantity=2_000_000_000)
        Item.objects.create(order=order, sku="X", quantity=2_000_000_000)
    # The write committed, the failing view is logged and still marked, the others fresh.
    assert Item.objects.count() == 2
    assert [model._meta.label for model, _log in refreshes.failed] == ["testapp.ItemSales"]
    assert "integer out of range" in refreshes.failed[0][1].error
    assert_fresh(CustomerTotals, BigSpenders, OrderItemStats)
    assert fetch(
        "SELECT count(*) FROM live_matview_dirtymark WHERE view_name = 'testapp_itemsales'"
    ) == [(1,)]
    state = fetch(
        "SELECT consecutive_failures, next_retry_at IS NOT NULL FROM live_matview_managedview "
        "WHERE view_name = 'testapp_itemsales'"
    )
    assert state == [(1, True)]
    # Fixing the data is a write too: the next pass retries and succeeds.
    with capture_refreshes() as refreshes:
        Item.objects.update(quantity=1)
    refreshes.assert_refreshed(ItemSales)
    assert list(ItemSales.objects.values_list("sku", "quantity")) == [("X", 2)]
    assert fetch(
        "SELECT consecutive_failures FROM live_matview_managedview "
        "WHERE view_name = 'testapp_itemsales'"
    ) == [(0,)]


@override_settings(LIVE_MATVIEW_CAPTURE="signals")
def test_signals_mode_keeps_djangos_fast_delete(customer):
    """No pre/post_delete receivers: QuerySet.delete() stays one DELETE statement."""
    order = Order.objects.create(customer=customer, amount=1)
    Item.objects.bulk_create([Item(order=order, sku=str(n)) for n in range(50)])
    with capture_refreshes() as refreshes:
        with CaptureQueriesContext(connection) as queries:
            Item.objects.filter(sku__in=["1", "2", "3"]).delete()
        statements = [q["sql"] for q in queries.captured_queries if q["sql"] != "BEGIN"]
    on_items = [sql for sql in statements if '"testapp_item"' in sql]
    assert len(on_items) == 1
    assert on_items[0].startswith('DELETE FROM "testapp_item"')
    refreshes.assert_refreshed(ItemSales, OrderItemStats)
    assert Item.objects.count() == 47


@pytest.mark.usefixtures("capture_mode")
def test_statement_that_changes_nothing_refreshes_nothing(customer):
    with capture_refreshes() as refreshes:
        Order.objects.filter(pk=-1).update(amount=1)
        Order.objects.filter(pk=-1).delete()
    assert refreshes.refreshed == []


def test_capture_trigger_runs_no_subtransaction():
    """pgtrigger's ignore check opens a subtransaction per statement, whose cost grows with
    the transaction; the capture trigger's function must not contain it."""
    sources = fetch(
        "SELECT p.prosrc FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
        "WHERE t.tgname LIKE 'pgtrigger_live_matview_%%'"
    )
    assert sources
    for (source,) in sources:
        assert "_pgtrigger_should_ignore" not in source
        assert "EXCEPTION" not in source.upper()
        assert "live_matview_mark" in source


def test_the_capture_trigger_marks_every_autocommit_write_and_each_transaction_once(customer):
    """The trigger skips its transaction-local flag on a transaction's first statement (an
    autocommit write, always): every other statement must still mark once per transaction,
    and a rolled-back savepoint must take its mark and the flag with it."""

    def count():
        return fetch(
            "SELECT count(*) FROM live_matview_dirtymark WHERE view_name = 'testapp_customertotals'"
        )[0][0]

    execute("DELETE FROM live_matview_dirtymark")
    insert = "INSERT INTO testapp_order (customer_id, amount, created) VALUES (%s, 1, now())"
    client = raw_connection()  # statement by statement, as any client sends them
    try:
        client.autocommit = True
        with client.cursor() as cursor:
            cursor.execute(insert, [customer.pk])
            cursor.execute(insert, [customer.pk])
            assert count() == 2  # two transactions
            cursor.execute("BEGIN")
            for _ in range(5):
                cursor.execute(insert, [customer.pk])
            cursor.execute("COMMIT")
            assert count() == 3  # one more for the five statements
            cursor.execute("BEGIN")
            cursor.execute("SAVEPOINT before")
            cursor.execute(insert, [customer.pk])
            cursor.execute("ROLLBACK TO SAVEPOINT before")
            cursor.execute(insert, [customer.pk])
            cursor.execute(insert, [customer.pk])
            cursor.execute("COMMIT")
            assert count() == 4  # the savepoint's mark went, the next write marked again
    finally:
        client.close()


@pytest.fixture
def commit_listener():
    """The writes the capture stage hands to the refresh stage after each commit."""
    from live_matview.capture import statements

    seen: list[set[str]] = []

    def listener(alias, tables):
        seen.append(tables)

    statements.on_writes_committed(listener)
    try:
        yield seen
    finally:
        statements._listeners.remove(listener)


@override_settings(LIVE_MATVIEW_REFRESH_MODE="manual")
def test_a_manual_mode_autocommit_save_sends_one_statement_and_hands_on_nothing(
    customer, commit_listener
):
    Order.objects.create(customer=customer, amount=1)  # the source map is read once, cached
    commit_listener.clear()
    with CaptureQueriesContext(connection) as queries:
        Order.objects.create(customer=customer, amount=2)
    assert [q["sql"][:27] for q in queries.captured_queries] == ['INSERT INTO "testapp_order"']
    assert commit_listener == []  # nothing in Python on the commit path
    assert fetch(
        "SELECT count(*) FROM live_matview_dirtymark WHERE view_name = 'testapp_customertotals'"
    ) == [(2,)]


@override_settings(LIVE_MATVIEW_REFRESH_MODE="manual")
def test_a_write_that_dirties_one_non_manual_view_is_handed_on(
    customer, commit_listener, monkeypatch
):
    monkeypatch.setattr(CustomerTotals, "refresh_mode", "on_commit")
    with capture_refreshes() as refreshes:
        Order.objects.create(customer=customer, amount=2)
    assert commit_listener == [{"testapp_order"}]
    refreshes.assert_refreshed(CustomerTotals)  # BigSpenders, built on it, stays manual


def marks_of(view) -> int:
    return fetch(
        "SELECT count(*) FROM live_matview_dirtymark WHERE view_name = %s",
        [view._meta.db_table],
    )[0][0]


@pytest.mark.usefixtures("signals_mode")
@override_settings(LIVE_MATVIEW_REFRESH_MODE="manual")
def test_signals_mode_a_failed_or_empty_autocommit_write_leaves_no_marks(customer):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        Order.objects.create(customer_id=-1, amount=1)  # no such customer
    Order.objects.filter(pk=-1).update(amount=3)  # matches nothing
    assert marks_of(CustomerTotals) == 0
    assert connection.get_autocommit()
    Order.objects.create(customer=customer, amount=2)  # the connection is fine
    assert marks_of(CustomerTotals) == 1


@pytest.mark.usefixtures("signals_mode")
def test_signals_mode_autocommit_write_refreshes_after_its_commit(customer):
    with capture_refreshes() as refreshes:
        Order.objects.create(customer=customer, amount=4)
    refreshes.assert_refreshed(CustomerTotals, BigSpenders)
    assert totals() == [(customer.pk, 1, 4)]
    assert marks_of(CustomerTotals) == 0
