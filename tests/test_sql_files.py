"""A view's SQL file holds exactly one SELECT (SPEC 2.7): comments and a trailing ';' are
fine, anything else is an error naming the file, and none of it runs."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError

from live_matview.views.sql_file import SqlFileError, single_query
from tests.helpers import execute, fetch, matview_definition, view_oid
from tests.testapp.models import ItemSales

ONE_QUERY = [
    ("SELECT 1", "SELECT 1"),
    ("SELECT 1;", "SELECT 1"),
    ("SELECT 1 ;\n\n", "SELECT 1"),
    ("SELECT 1;;", "SELECT 1"),
    ("SELECT 1; -- done", "SELECT 1"),
    ("SELECT 1; /* done */", "SELECT 1"),
    ("-- header; with a semicolon\nSELECT 1", "-- header; with a semicolon\nSELECT 1"),
    (
        "SELECT 1 /* a /* nested; */ still ; comment */",
        "SELECT 1 /* a /* nested; */ still ; comment */",
    ),
    ("SELECT ';' AS a, '--' AS b", "SELECT ';' AS a, '--' AS b"),
    ("SELECT 'it''s; fine'", "SELECT 'it''s; fine'"),
    ("SELECT E'\\'; still a string'", "SELECT E'\\'; still a string'"),
    ('SELECT 1 AS "semi;colon"', 'SELECT 1 AS "semi;colon"'),
    ('SELECT 1 AS "quote"";"', 'SELECT 1 AS "quote"";"'),
    ("SELECT $$ ; -- $$", "SELECT $$ ; -- $$"),
    ("SELECT $tag$ ; $$ ; $tag$", "SELECT $tag$ ; $$ ; $tag$"),
    ("WITH a AS (SELECT 1 AS x) SELECT x FROM a;", "WITH a AS (SELECT 1 AS x) SELECT x FROM a"),
    (
        "WITH RECURSIVE n(i) AS (SELECT 1) SELECT i FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 1) SELECT i FROM n",
    ),
    ("(SELECT 1) UNION (SELECT 2)", "(SELECT 1) UNION (SELECT 2)"),
    ("select 1", "select 1"),
]


@pytest.mark.parametrize(("text", "query"), ONE_QUERY)
def test_one_query_with_comments_and_quotes_is_accepted(text, query):
    assert single_query(text) == query


NOT_ONE_QUERY = [
    ("SELECT 1; DROP TABLE bk_victim", "more than one statement"),
    ("SELECT 1; SELECT 2;", "more than one statement"),
    ("SELECT 1 -- comment\n; DELETE FROM t", "more than one statement"),
    ("SELECT ';'; DROP TABLE t", "more than one statement"),
    ("SELECT $$;$$; DROP TABLE t", "more than one statement"),
    ("DELETE FROM t", "'DELETE', not a SELECT"),
    ("CREATE TABLE t AS SELECT 1", "'CREATE', not a SELECT"),
    ("WITH a AS (SELECT 1) DELETE FROM t", "'DELETE', not a SELECT"),
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "data-modifying"),
    ("", "no query"),
    ("-- only a comment\n;", "no query"),
    ("SELECT 'no end", "quoted string never ends"),
    ('SELECT 1 AS "no end', "quoted identifier never ends"),
    ("SELECT $x$ no end", "never ends"),
    ("SELECT 1 /* no /* end */", "comment never ends"),
]


@pytest.mark.parametrize(("text", "problem"), NOT_ONE_QUERY)
def test_anything_but_one_select_is_refused(text, problem):
    with pytest.raises(SqlFileError, match=problem):
        single_query(text)


@pytest.fixture(autouse=True)
def _forget_caches_built_in_rolled_back_transactions():
    """A sync inside a test's transaction never commits, so its on-commit cache reset never
    runs: drop what this process cached from that transaction's state."""
    yield
    from live_matview.processor import forget_caches

    forget_caches()


def run(*args) -> str:
    out = io.StringIO()
    call_command("migrate_with_views", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def victim(db):
    execute("CREATE TABLE bk_victim (id integer)")
    execute("INSERT INTO bk_victim VALUES (1)")


ATTACK = (
    "SELECT sku, sum(quantity)::integer AS quantity FROM testapp_item GROUP BY sku; "
    "DROP TABLE bk_victim; CREATE TABLE bk_pwned AS SELECT 1"
)


def _nothing_ran():
    assert fetch("SELECT count(*) FROM bk_victim") == [(1,)]
    assert fetch("SELECT to_regclass('bk_pwned')") == [(None,)]


@pytest.mark.usefixtures("victim")
@pytest.mark.parametrize("fresh", [True, False], ids=["new view", "existing view"])
def test_a_second_statement_never_runs(sql_file, fresh):
    """The attack of issue 10.10, on the create path and on the compare path."""
    if fresh:
        execute("DROP MATERIALIZED VIEW testapp_itemsales")
    before = view_oid(ItemSales)
    sql_file.write_text(ATTACK)
    with pytest.raises(CommandError) as excinfo:
        run()
    message = str(excinfo.value)
    assert "testapp.ItemSales" in message
    assert str(sql_file) in message
    assert "more than one statement" in message
    _nothing_ran()
    assert view_oid(ItemSales) == before


@pytest.mark.usefixtures("victim")
def test_a_data_modifying_with_never_runs(sql_file):
    execute("DROP MATERIALIZED VIEW testapp_itemsales")
    sql_file.write_text(
        "WITH gone AS (DELETE FROM bk_victim RETURNING id) "
        "SELECT 'x'::varchar AS sku, count(*)::integer AS quantity FROM gone"
    )
    with pytest.raises(CommandError, match="data-modifying"):
        run()
    _nothing_ran()


@pytest.mark.usefixtures("victim")
def test_the_system_check_names_the_file_before_anything_runs(sql_file):
    """From the command line ``migrate`` runs the checks first: the error is E020."""
    sql_file.write_text(ATTACK)
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check")
    message = str(excinfo.value)
    assert "live_matview.E020" in message
    assert str(sql_file) in message
    assert "HINT: Keep exactly one SELECT" in message
    _nothing_ran()


@pytest.mark.django_db
@pytest.mark.parametrize("fresh", [True, False], ids=["new view", "existing view"])
def test_semicolon_then_comment_works_on_new_and_existing_views(sql_file, fresh):
    """Issue 11.4: ``; -- comment`` made CREATE ... WITH DATA a syntax error on a fresh
    database, while an existing one said "No changes"."""
    if fresh:
        execute("DROP MATERIALIZED VIEW testapp_itemsales")
    sql_file.write_text(
        "-- per SKU\nSELECT sku, sum(quantity)::integer AS quantity\nFROM testapp_item\n"
        "GROUP BY sku; -- the end\n/* really */\n"
    )
    output = run()
    assert ("create   testapp_itemsales" in output) is fresh
    assert view_oid(ItemSales) is not None
    assert "GROUP BY" in matview_definition(ItemSales)
    assert "No changes." in run()


@pytest.mark.django_db
def test_check_accepts_comments_and_trailing_semicolon(sql_file):
    sql_file.write_text("SELECT sku, 1 AS quantity FROM testapp_item; -- fine\n")
    call_command("check")
