"""Property: after any sequence of writes, an incremental view equals its query.

Random sequences of creates, updates that move rows between keys, deletes (with Django's
cascades), bulk operations, raw SQL, rolled-back savepoints and TRUNCATE; every write
commits (autocommit or a transaction) and refreshes on commit, by key where it can.
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from live_matview.models import KeyMark, MaterializedViewRefreshLog
from tests.incrementalapp.models import Client, Sale, SaleLine
from tests.test_incremental import assert_fresh

pytestmark = pytest.mark.django_db(transaction=True)

SKUS = ["a", "b", "c"]


def _pick(model, index):
    ids = list(model.objects.order_by("pk").values_list("pk", flat=True))
    return ids[index % len(ids)] if ids else None


def _raw(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def create_client(i, _j):
    Client.objects.create(name=f"c{i}")


def create_sale(i, j):
    if (client := _pick(Client, i)) is not None:
        Sale.objects.create(client_id=client, amount=j)


def create_line(i, j):
    if (sale := _pick(Sale, i)) is not None:
        SaleLine.objects.create(sale_id=sale, sku=SKUS[j % 3], quantity=j)


def move_sale(i, j):  # dirties the old and the new client
    sale, client = _pick(Sale, i), _pick(Client, j)
    if sale is not None and client is not None:
        Sale.objects.filter(pk=sale).update(client_id=client)


def move_line(i, j):  # to another sale and another sku: four keys in two views
    line, sale = _pick(SaleLine, i), _pick(Sale, j)
    if line is not None and sale is not None:
        line_row = SaleLine.objects.get(pk=line)
        line_row.sale_id, line_row.sku = sale, SKUS[(j + 1) % 3]
        line_row.save()


def delete_client(i, _j):  # Django cascades to sales and lines
    if (client := _pick(Client, i)) is not None:
        Client.objects.get(pk=client).delete()


def delete_sale(i, _j):
    Sale.objects.filter(pk=_pick(Sale, i)).delete()


def bulk(i, j):
    SaleLine.objects.filter(sku=SKUS[i % 3]).update(quantity=j, sku=SKUS[j % 3])
    if (client := _pick(Client, i)) is not None:
        Sale.objects.bulk_create([Sale(client_id=client, amount=k) for k in range(j % 4)])


def raw_sql(i, j):
    _raw(
        "UPDATE incrementalapp_saleline SET quantity = quantity + %s WHERE id %% 2 = %s", [j, i % 2]
    )
    _raw(
        "DELETE FROM incrementalapp_sale WHERE id %% 5 = %s AND NOT EXISTS "
        "(SELECT 1 FROM incrementalapp_saleline l WHERE l.sale_id = incrementalapp_sale.id)",
        [i % 5],
    )


def rolled_back(i, j):
    with transaction.atomic():
        create_sale(i, j)
        try:
            with transaction.atomic():
                move_sale(i, j + 1)
                delete_client(j, 0)
                raise _Undo
        except _Undo:
            pass


def truncate(i, _j):
    if i % 4 == 0:  # rarer: it empties the table
        _raw("TRUNCATE incrementalapp_saleline")


def several_in_one_transaction(i, j):
    with transaction.atomic():
        create_line(i, j)
        move_sale(j, i)
        create_client(i, j)


class _Undo(Exception):
    pass


OPERATIONS = [
    create_client,
    create_sale,
    create_line,
    move_sale,
    move_line,
    delete_client,
    delete_sale,
    bulk,
    raw_sql,
    rolled_back,
    truncate,
    several_in_one_transaction,
]
STEP = st.tuples(st.sampled_from(OPERATIONS), st.integers(0, 20), st.integers(0, 20))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEP, min_size=1, max_size=10))
def test_every_write_sequence_leaves_the_views_equal_to_their_queries(steps):
    # Each example starts empty, so that a failure replays (and shrinks) reliably.
    _raw("TRUNCATE incrementalapp_client, incrementalapp_sale, incrementalapp_saleline")
    for operation, i, j in steps:
        operation(i, j)
    assert_fresh()
    assert not KeyMark.objects.exists()
    assert not MaterializedViewRefreshLog.objects.filter(failed=True).exists()
