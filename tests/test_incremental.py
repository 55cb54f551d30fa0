"""Incremental views end to end: stored as tables, keys captured by triggers, refreshed by key."""

from __future__ import annotations

import io

import pytest
from django.db import connection, transaction
from django.test.utils import override_settings

from live_matview import refresh_dirty
from live_matview.models import KeyMark, MaterializedViewRefreshLog
from live_matview.processor import sync_views
from live_matview.schema import introspection
from tests.helpers import execute, fetch, raw_connection
from tests.incrementalapp.models import (
    BigClients,
    Client,
    ClientTotals,
    Sale,
    SaleLine,
    SkuTotals,
)

pytestmark = pytest.mark.django_db(transaction=True)

VIEWS = (ClientTotals, SkuTotals, BigClients)


def differences(model) -> tuple[int, int]:
    """Rows in the stored view but not in its query and the reverse, duplicates counted."""
    from live_matview.schema import ddl
    from live_matview.views.query import view_sql

    table = ddl.relation(model).quoted(connection)
    query = view_sql(model, connection)
    columns = ", ".join(f'"{field.column}"' for field in model._meta.concrete_fields)
    stored = f"SELECT {columns} FROM {table}"
    wanted = f"SELECT {columns} FROM ({query}) q"
    return (
        fetch(f"SELECT count(*) FROM ({stored} EXCEPT ALL {wanted}) d")[0][0],
        fetch(f"SELECT count(*) FROM ({wanted} EXCEPT ALL {stored}) d")[0][0],
    )


def assert_fresh(*models) -> None:
    for model in models or VIEWS:
        assert differences(model) == (0, 0), f"{model._meta.label} differs from its query"


def logs(model):
    return list(
        MaterializedViewRefreshLog.objects.filter(view_name=model._meta.db_table).order_by("id")
    )


def test_an_incremental_view_is_a_table_with_its_query_beside_it():
    with connection.cursor() as cursor:
        oid = introspection.relation_oid(cursor, "incrementalapp_clienttotals")
        assert introspection.relkind(cursor, oid) == "r"
        query = introspection.relation_oid(cursor, "incrementalapp_clienttotals_lmv_query")
        assert introspection.relkind(cursor, query) == "v"
    triggers = fetch(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger "
        "WHERE tgname LIKE 'live_matview_keys_%%' ORDER BY 1, 2"
    )
    by_table: dict[str, list[str]] = {}
    for table, name in triggers:
        by_table.setdefault(table, []).append(name.removeprefix("live_matview_keys_"))
    assert by_table == {
        table: ["delete", "insert", "truncate", "update"]
        for table in ("incrementalapp_client", "incrementalapp_sale", "incrementalapp_saleline")
    }


def test_an_autocommit_save_refreshes_only_its_key():
    other = Client.objects.create(name="other")
    client = Client.objects.create(name="c")
    sale = Sale.objects.create(client=client, amount=5)
    SaleLine.objects.create(sale=sale, sku="A", quantity=3)
    assert_fresh()
    assert ClientTotals.objects.get(pk=client.pk).quantity == 3
    assert ClientTotals.objects.get(pk=other.pk).sales == 0  # LEFT JOIN: a row of zeros
    last = logs(ClientTotals)[-1]
    assert (last.kind, last.keys, last.trigger, last.failed) == ("by_key", 1, "on_commit", False)
    assert logs(SkuTotals)[-1].kind == "by_key"
    assert not KeyMark.objects.exists()


def test_a_row_moved_between_keys_refreshes_both():
    first, second = Client.objects.create(name="a"), Client.objects.create(name="b")
    sale = Sale.objects.create(client=first, amount=7)
    SaleLine.objects.create(sale=sale, sku="X", quantity=11)
    assert BigClients.objects.filter(pk=first.pk).exists()
    Sale.objects.filter(pk=sale.pk).update(client=second)
    assert_fresh()
    assert ClientTotals.objects.get(pk=first.pk).quantity == 0
    assert ClientTotals.objects.get(pk=second.pk).quantity == 11
    assert logs(ClientTotals)[-1].keys == 2
    assert list(BigClients.objects.values_list("pk", flat=True)) == [second.pk]


def test_deletes_cascades_and_bulk_writes_stay_exact():
    clients = Client.objects.bulk_create([Client(name=str(i)) for i in range(5)])
    sales = Sale.objects.bulk_create([Sale(client=c, amount=i) for i, c in enumerate(clients)])
    SaleLine.objects.bulk_create(
        [SaleLine(sale=s, sku=f"S{i % 2}", quantity=i) for i, s in enumerate(sales * 2)]
    )
    assert_fresh()
    clients[0].delete()  # Django's cascade: lines, then sales, then the client
    SaleLine.objects.filter(sku="S1").update(sku="S2")
    Sale.objects.filter(client=clients[1]).delete()
    assert_fresh()
    assert not ClientTotals.objects.filter(pk=clients[0].pk).exists()


def test_raw_sql_from_another_client_is_captured():
    client = Client.objects.create(name="raw")
    other = raw_connection()  # a client Django knows nothing of
    try:
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute(
                "INSERT INTO incrementalapp_sale (client_id, amount) VALUES (%s, 2)", [client.pk]
            )
    finally:
        other.close()
    assert KeyMark.objects.filter(view_name="incrementalapp_clienttotals").exists()
    refresh_dirty()
    assert_fresh()
    assert ClientTotals.objects.get(pk=client.pk).sales == 1


def test_a_rolled_back_savepoint_marks_no_key():
    client = Client.objects.create(name="c")
    before = len(logs(ClientTotals))
    with transaction.atomic():
        try:
            with transaction.atomic():
                Sale.objects.create(client=client, amount=1)
                raise RuntimeError
        except RuntimeError:
            pass
    assert len(logs(ClientTotals)) == before
    assert not KeyMark.objects.exists()
    assert_fresh()


def test_truncate_rebuilds_fully():
    client = Client.objects.create(name="c")
    SaleLine.objects.create(sale=Sale.objects.create(client=client), sku="T", quantity=2)
    execute("TRUNCATE incrementalapp_saleline")
    refresh_dirty()
    assert_fresh()
    assert logs(SkuTotals)[-1].kind == "full"
    assert not SkuTotals.objects.exists()


def test_a_row_whose_path_is_gone_dirties_the_whole_view():
    """Lines deleted after their sale, in one transaction (the foreign key is deferred): the
    lines' client cannot be found any more, so ClientTotals is rebuilt; SkuTotals, keyed on
    the line itself, is still refreshed by key."""
    client = Client.objects.create(name="c")
    sale = Sale.objects.create(client=client, amount=1)
    SaleLine.objects.create(sale=sale, sku="P", quantity=2)
    other = raw_connection()
    try:
        with other, other.cursor() as cursor:  # one transaction
            cursor.execute("DELETE FROM incrementalapp_sale WHERE id = %s", [sale.pk])
            cursor.execute("DELETE FROM incrementalapp_saleline WHERE sale_id = %s", [sale.pk])
    finally:
        other.close()
    refresh_dirty()
    assert logs(ClientTotals)[-1].kind == "full"
    assert logs(SkuTotals)[-1].kind == "by_key"
    assert_fresh()


def test_refresh_rebuilds_fully_and_logs_it():
    client = Client.objects.create(name="c")
    Sale.objects.create(client=client, amount=3)
    execute("DELETE FROM incrementalapp_clienttotals")  # as if it had drifted
    log = ClientTotals.refresh()
    # A table rebuilt by its refresh function: CONCURRENTLY does not apply (None).
    assert (log.kind, log.keys, log.concurrently) == ("full", None, None)
    assert log.trigger == "manual"
    assert_fresh()
    stored = MaterializedViewRefreshLog.objects.get(pk=log.pk)
    assert (stored.kind, stored.failed) == ("full", False)


def test_a_large_change_falls_back_to_a_full_rebuild():
    clients = Client.objects.bulk_create([Client(name=str(i)) for i in range(300)])
    with override_settings(LIVE_MATVIEW_INCREMENTAL_MAX_SHARE=0.1):
        execute("ANALYZE incrementalapp_clienttotals")
        Sale.objects.bulk_create([Sale(client=c, amount=1) for c in clients[:150]])
    last = logs(ClientTotals)[-1]
    assert last.kind == "full"
    assert "over 10%" in last.reason
    assert_fresh()


def test_signals_mode_refreshes_incremental_views_fully():
    client = Client.objects.create(name="c")
    with override_settings(LIVE_MATVIEW_CAPTURE="signals"):
        Sale.objects.create(client=client, amount=1)
    assert logs(ClientTotals)[-1].kind == "full"
    assert_fresh()


def test_a_switch_between_full_and_incremental_is_a_rebuild(monkeypatch):
    Client.objects.create(name="c")
    monkeypatch.setattr(ClientTotals, "refresh_on", [Client, Sale, SaleLine])
    plan = sync_views()
    lines = [a.describe() for a in plan.actions if a.model in (ClientTotals, BigClients)]
    assert any("switches to full refresh (a rebuild)" in line for line in lines)
    assert any(line.startswith("recreate") and "BigClients" in line for line in lines)
    with connection.cursor() as cursor:
        assert introspection.matview_oid(cursor, "incrementalapp_clienttotals") is not None
    assert not fetch(
        "SELECT 1 FROM pg_trigger WHERE tgrelid = 'incrementalapp_sale'::regclass "
        "AND tgname LIKE 'live_matview_keys_%%'"
    )
    monkeypatch.undo()
    plan = sync_views()
    assert any("switches to incremental refresh" in a.describe() for a in plan.actions)
    assert sync_views().changes == []
    assert not sync_views().capture_changes
    Sale.objects.create(client=Client.objects.get(), amount=4)
    assert logs(ClientTotals)[-1].kind == "by_key"
    assert_fresh()


@override_settings(LIVE_MATVIEW_REFRESH_MODE="manual")
def test_pending_keys_show_in_the_status_and_the_admin(admin_client):
    """A manual-mode write leaves key marks; the operator's views count them."""
    from django.core.management import call_command
    from django.urls import reverse

    from live_matview.status import view_statuses

    sync_views("default")  # the admin lists the views the sync records (a flush empties them)
    client = Client.objects.create(name="pending")
    Sale.objects.create(client=client, amount=1)
    by_view = {status.view: status for status in view_statuses("default")}
    assert by_view[ClientTotals._meta.db_table].pending_keys == 1
    assert by_view[SkuTotals._meta.db_table].pending_keys == 0
    output = io.StringIO()
    call_command("live_matview_status", stdout=output)
    assert "0 + 1 keys" in output.getvalue()
    page = admin_client.get(reverse("admin:live_matview_managedview_changelist"))
    assert "0 + 1 keys" in page.content.decode()
