"""Signals mode: an autocommit write and its marks travel in one statement.

The marks (``live_matview_signal_mark()``) go in front of the write in one string, which
the server runs as one implicit transaction: one round trip, one commit. What reaches the
database cursor is counted by an execute wrapper placed after the library's own. Each test
runs on the installed driver (CI runs the suite on psycopg 2 and on psycopg 3).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest
from django.db import IntegrityError, connection, connections

from live_matview._compat import is_psycopg3, runs_statement_strings
from live_matview.capture import autocommit
from live_matview.testing import capture_refreshes
from tests.helpers import execute, fetch
from tests.testapp.models import CustomerTotals, Order

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("signals_mode"),
]


@pytest.fixture(autouse=True)
def manual_views(settings):
    """Writes only mark: what is counted is the capture, not a refresh after it."""
    settings.LIVE_MATVIEW_REFRESH_MODE = "manual"


@contextmanager
def sent_to_server_of(wrapper):
    """The statements that reach the driver's cursor, after the library's wrapper."""
    sent: list[str] = []

    def record(execute_, sql, params, many, context):
        sent.append(sql)
        return execute_(sql, params, many, context)

    wrapper.ensure_connection()  # connection_created installs the library's wrapper first
    with wrapper.execute_wrapper(record):
        yield sent


def sent_to_server():
    return sent_to_server_of(connection)


def marks(view: str = "testapp_customertotals") -> list[tuple[str, str]]:
    """(view, xmin) of the marks of one of the four views that read testapp_order."""
    return fetch(
        "SELECT view_name, xmin::text FROM live_matview_dirtymark WHERE view_name = %s ORDER BY id",
        [view],
    )


@pytest.fixture
def warm(signals_mode, customer):
    """One write first, so that the source map is read and cached before counting."""
    Order.objects.create(customer=customer, amount=1)
    execute("DELETE FROM live_matview_dirtymark")
    return customer


def test_a_save_and_its_marks_are_one_statement_and_one_commit(warm):
    with sent_to_server() as sent:
        order = Order.objects.create(customer=warm, amount=2)
    assert len(sent) == 1, sent
    assert autocommit.FUNCTION in sent[0]
    assert 'INSERT INTO "testapp_order"' in sent[0]
    assert connection.get_autocommit()
    # RETURNING reached Django: the pk is the row's; one transaction wrote row and mark.
    (xmin,) = fetch(
        "SELECT xmin::text FROM testapp_order WHERE id = %s AND amount = 2", [order.pk]
    )[0]
    assert marks() == [("testapp_customertotals", xmin)]


def test_an_update_and_a_delete_return_their_rowcount(warm):
    Order.objects.create(customer=warm, amount=2)
    with sent_to_server() as sent:
        assert Order.objects.update(amount=5) == 2
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM testapp_order WHERE amount = %s", [5])
            assert cursor.rowcount == 2
    assert len(sent) == 2, sent
    assert len(marks()) == 3


def test_returning_rows_of_a_multi_row_insert_are_the_writes(warm):
    """An INSERT of VALUES, and one of a SELECT (which could insert nothing, so psycopg 2
    also asks for the marks' ids): every RETURNING row, in order, and the rowcount."""
    values = "INSERT INTO testapp_order (customer_id, amount, created) VALUES "
    select = "INSERT INTO testapp_order (customer_id, amount, created) SELECT %s, n, now() "
    with sent_to_server() as sent, connection.cursor() as cursor:
        cursor.execute(
            values + "(%s, 7, now()), (%s, 8, now()) RETURNING id, amount::int", [warm.pk] * 2
        )
        returned = cursor.fetchall()
        assert cursor.rowcount == 2
        cursor.execute(
            select + "FROM generate_series(9, 11) n RETURNING id, amount::int", [warm.pk]
        )
        returned += cursor.fetchall()
        assert cursor.rowcount == 3
    assert len(sent) == 2, sent
    assert returned == fetch(
        "SELECT id, amount::int FROM testapp_order WHERE amount > 6 ORDER BY id"
    )
    assert [amount for _, amount in returned] == [7, 8, 9, 10, 11]
    assert len(marks()) == 2


def test_a_write_that_changed_nothing_leaves_no_mark(warm):
    with sent_to_server() as sent:
        assert Order.objects.filter(pk=-1).update(amount=3) == 0
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM testapp_order WHERE id = %s", [-1])
            assert cursor.rowcount == 0
    assert marks() == []
    assert fetch("SELECT count(*) FROM live_matview_dirtymark") == [(0,)]
    assert len(sent) == 4  # each: the statement, then the rare one taking its marks back


def test_a_failed_write_reaches_the_caller_once_and_leaves_no_mark(warm):
    with sent_to_server() as sent, pytest.raises(IntegrityError, match="customer_id"):
        Order.objects.create(customer_id=-1, amount=1)
    assert len(sent) == 1  # not run again
    assert marks() == []
    assert connection.get_autocommit()
    Order.objects.create(customer=warm, amount=2)  # the connection is fine
    assert len(marks()) == 1


def test_percent_signs_in_names_survive_with_and_without_params(warm, monkeypatch):
    """The marks' literals are quoted by the driver; their ``%`` doubled only when the
    driver will read placeholders (Django passes params None for a bare statement)."""
    monkeypatch.setattr(CustomerTotals._meta, "db_table", "100% totals")
    Order.objects.create(customer=warm, amount=2)  # params: %% in the marks part
    with connection.cursor() as cursor:
        cursor.execute("UPDATE testapp_order SET amount = amount WHERE amount::text LIKE '2%'")
        assert cursor.rowcount == 1
    assert len(marks("100% totals")) == 2


@pytest.fixture
def marking_fails(warm):
    """Every mark insert violates a check: the write must still run, once."""
    execute(
        "ALTER TABLE live_matview_dirtymark ADD CONSTRAINT no_marks_in_this_test "
        "CHECK (view_name = '') NOT VALID"
    )
    try:
        yield
    finally:
        execute("ALTER TABLE live_matview_dirtymark DROP CONSTRAINT no_marks_in_this_test")


@pytest.mark.usefixtures("marking_fails")
def test_a_failure_to_mark_is_logged_and_the_write_commits(warm, caplog):
    with sent_to_server() as sent, caplog.at_level(logging.ERROR, "live_matview"):
        order = Order.objects.create(customer=warm, amount=2)
    assert len(sent) == 2  # the string that failed at the marks, then the write alone
    assert 'INSERT INTO "testapp_order"' in sent[1]
    assert autocommit.FUNCTION not in sent[1]
    assert fetch("SELECT amount::int FROM testapp_order WHERE id = %s", [order.pk]) == [(2,)]
    assert marks() == []
    assert any("could not record a write" in r.getMessage() for r in caplog.records)


@pytest.fixture
def function_renamed(warm):
    """The state before migration 0007 is applied: no ``live_matview_signal_mark()``."""
    execute("ALTER FUNCTION live_matview_signal_mark(text, text[], boolean) RENAME TO lmv_away")
    autocommit._missing.clear()
    try:
        yield
    finally:
        execute("ALTER FUNCTION lmv_away(text, text[], boolean) RENAME TO live_matview_signal_mark")
        autocommit._missing.clear()


@pytest.mark.usefixtures("function_renamed")
def test_without_the_function_the_write_runs_once_on_the_atomic_path(warm, caplog):
    with sent_to_server() as sent, caplog.at_level(logging.WARNING, "live_matview"):
        order = Order.objects.create(customer=warm, amount=2)
    # The failed string (the write in it never ran), then marks and write in atomic().
    assert len(sent) == 3, sent
    assert fetch("SELECT count(*) FROM testapp_order WHERE amount = 2") == [(1,)]
    assert len(marks()) == 1
    assert order.pk == fetch("SELECT id FROM testapp_order WHERE amount = 2")[0][0]
    assert any("run migrate" in r.getMessage() for r in caplog.records)
    with sent_to_server() as sent:
        Order.objects.create(customer=warm, amount=3)
    assert len(sent) == 2  # straight to the atomic path: marks, write (BEGIN/COMMIT aside)


def test_executemany_and_dict_params_keep_the_atomic_path(warm):
    with sent_to_server() as sent, connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO testapp_order (customer_id, amount, created) VALUES (%s, %s, now())",
            [(warm.pk, 4), (warm.pk, 5)],
        )
        cursor.execute("UPDATE testapp_order SET amount = %(a)s WHERE amount = 4", {"a": 6})
        assert cursor.rowcount == 1
    assert all(autocommit.FUNCTION not in sql for sql in sent)
    assert len(marks()) == 2
    assert fetch("SELECT amount::int FROM testapp_order ORDER BY amount") == [(1,), (5,), (6,)]


def test_only_cursors_that_bind_on_the_client_run_statement_strings():
    connection.ensure_connection()
    if not is_psycopg3:
        with connection.connection.cursor() as raw:
            assert runs_statement_strings(raw)
        return
    import psycopg  # only on psycopg 3

    assert runs_statement_strings(psycopg.ClientCursor(connection.connection))
    assert not runs_statement_strings(psycopg.Cursor(connection.connection))


def test_on_commit_views_are_refreshed_after_the_one_statement(warm, settings):
    settings.LIVE_MATVIEW_REFRESH_MODE = "on_commit"
    with capture_refreshes() as refreshes, sent_to_server() as sent:
        Order.objects.create(customer=warm, amount=4)
    assert autocommit.FUNCTION in sent[0]
    assert any("live_matview_refresh(" in sql for sql in sent[1:])
    refreshes.assert_refreshed(CustomerTotals)
    assert fetch("SELECT orders, total::int FROM testapp_customertotals") == [(2, 5)]


@pytest.mark.skipif(not is_psycopg3, reason="server_side_binding is a psycopg 3 option")
def test_server_side_binding_keeps_the_atomic_path(warm):
    """Prepared statements take one statement each: the marks and the write go in atomic()."""
    default = connections["default"]
    options = {**default.settings_dict["OPTIONS"], "server_side_binding": True}
    bound = type(default)({**default.settings_dict, "OPTIONS": options}, alias="default")
    try:
        with sent_to_server_of(bound) as sent, bound.cursor() as cursor:
            cursor.execute(
                "INSERT INTO testapp_order (customer_id, amount, created) "
                "VALUES (%s, 3, now()) RETURNING id",
                [warm.pk],
            )
            (pk,) = cursor.fetchone()
        assert all(autocommit.FUNCTION not in sql for sql in sent)
        assert fetch("SELECT amount::int FROM testapp_order WHERE id = %s", [pk]) == [(3,)]
        assert len(marks()) == 1
    finally:
        bound.close()
