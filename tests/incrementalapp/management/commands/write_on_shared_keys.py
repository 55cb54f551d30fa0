"""One writer process of tests/test_incremental_processes.py: random writes on shared keys.

    python -m django write_on_shared_keys SEED OPERATIONS MODE CLIENT_IDS

It prints ``ready``, waits for a line on stdin (so that every writer starts at once),
writes with ``LIVE_MATVIEW_REFRESH_MODE = MODE``, waits for its background refreshes, and
prints one JSON line: how many operations it ran and every error it saw (an exception of
its own, a ``refresh_failed`` signal, a warning or error the library logged). It exits
with status 1 when there is any.

The keys overlap on purpose: every writer moves its rows between the same few clients
(``ClientTotals``) and skus (``SkuTotals``). The rows do not: each writer updates and
deletes only the sales it created, so writers never wait for each other's row locks, and
an error is the library's.
"""

from __future__ import annotations

import json
import logging
import random
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, connections, transaction
from django.db.models import F
from django.test.utils import override_settings

from live_matview.refresh import background
from live_matview.signals import refresh_failed
from tests.incrementalapp.models import Client, Sale, SaleLine

SKUS = "xyz"


class Command(BaseCommand):
    help = "Random writes on keys other processes write too (a test's writer process)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("seed", type=int)
        parser.add_argument("operations", type=int)
        parser.add_argument("mode", choices=["on_commit", "async", "manual"])
        parser.add_argument("clients", help="Comma-separated ids of the shared clients.")
        parser.add_argument(
            "--lock-wait",
            type=float,
            help="LIVE_MATVIEW_LOCK_WAIT: small, on-commit refreshes hand views off often.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        errors: list[str] = []
        collect = _Collect(errors)
        logging.getLogger("live_matview").addHandler(collect)

        def failed(sender: Any, error: BaseException, **_kwargs: Any) -> None:
            errors.append(f"refresh of {sender._meta.label} failed: {error}")

        refresh_failed.connect(failed, weak=False)
        self.stdout.write("ready")
        self.stdout.flush()
        sys.stdin.readline()
        writer = Writer(options["seed"], [int(pk) for pk in options["clients"].split(",")])
        done = 0
        overrides: dict[str, Any] = {"LIVE_MATVIEW_REFRESH_MODE": options["mode"]}
        if options["lock_wait"] is not None:
            overrides["LIVE_MATVIEW_LOCK_WAIT"] = options["lock_wait"]
        with override_settings(**overrides):
            try:
                while done < options["operations"]:
                    writer.step()
                    done += 1
            except Exception as exc:  # noqa: BLE001  (reported, and the exit status says so)
                errors.append(f"{type(exc).__name__}: {exc}")
            if not background.wait_idle(timeout=120):
                errors.append("the background refresher was still busy after 120 s")
        connections.close_all()
        self.stdout.write(json.dumps({"operations": done, "errors": errors}))
        self.stdout.flush()
        if errors:
            raise CommandError(f"{len(errors)} errors")


class _Collect(logging.Handler):
    """Warnings and errors of the ``live_matview`` loggers, to report them."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.errors = errors

    def emit(self, record: logging.LogRecord) -> None:
        self.errors.append(f"{record.name}: {record.getMessage()}")


class _RolledBack(Exception):
    pass


class Writer:
    """A seeded mix of the writes an application makes: transactions, moves between
    keys, deletes with cascades, bulk operations, raw SQL, savepoint rollbacks."""

    def __init__(self, seed: int, clients: list[int]) -> None:
        self.rng = random.Random(seed)
        self.clients = clients
        self.sales: list[int] = []  # this writer's own sales
        self.operations = [
            self.create,
            self.create,
            self.move_sale,
            self.move_line,
            self.delete_sale,
            self.bulk_update,
            self.bulk_delete_lines,
            self.raw_sql,
            self.rename_client,
            self.savepoint_rollback,
            self.cascade_from_a_new_client,
        ]

    def step(self) -> None:
        self.rng.choice(self.operations)()

    def client(self) -> int:
        return self.rng.choice(self.clients)

    def create(self) -> None:
        with transaction.atomic():
            sale = Sale.objects.create(client_id=self.client(), amount=self.rng.randint(1, 9))
            SaleLine.objects.bulk_create(
                SaleLine(sale=sale, sku=self.rng.choice(SKUS), quantity=self.rng.randint(1, 5))
                for _ in range(self.rng.randint(0, 3))
            )
        self.sales.append(sale.pk)

    def move_sale(self) -> None:
        """From one key of ``ClientTotals`` to another: both are dirtied."""
        if self.sales:
            Sale.objects.filter(pk=self.rng.choice(self.sales)).update(client_id=self.client())

    def move_line(self) -> None:
        """A line to another sale (maybe of another client) and sku, by ``save()``."""
        line = SaleLine.objects.filter(sale_id__in=self.sales).order_by("?").first()
        if line is not None:
            line.sale_id = self.rng.choice(self.sales)
            line.sku = self.rng.choice(SKUS)
            line.save()

    def delete_sale(self) -> None:
        """Django's cascade: the lines first, then the sale, in one transaction."""
        if self.sales:
            pk = self.sales.pop(self.rng.randrange(len(self.sales)))
            Sale.objects.filter(pk=pk).delete()

    def bulk_update(self) -> None:
        chosen = self.rng.sample(self.sales, min(len(self.sales), 4))
        with transaction.atomic():
            Sale.objects.filter(pk__in=chosen).update(
                client_id=self.client(), amount=F("amount") + 1
            )
            SaleLine.objects.filter(sale_id__in=chosen).update(quantity=F("quantity") + 1)

    def bulk_delete_lines(self) -> None:
        SaleLine.objects.filter(sale_id__in=self.sales, sku=self.rng.choice(SKUS)).delete()

    def raw_sql(self) -> None:
        """Statements Django does not compile: the triggers see them all the same."""
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO incrementalapp_sale (client_id, amount) VALUES (%s, %s) RETURNING id",
                [self.client(), self.rng.randint(1, 9)],
            )
            self.sales.append(cursor.fetchone()[0])
            cursor.execute(
                "INSERT INTO incrementalapp_saleline (sale_id, sku, quantity) "
                "SELECT id, %s, 2 FROM incrementalapp_sale WHERE id = ANY(%s)",
                [self.rng.choice(SKUS), self.sales[-3:]],
            )

    def rename_client(self) -> None:
        """A write to a shared row of the ``Client: "pk"`` source."""
        Client.objects.filter(pk=self.client()).update(name=str(self.rng.randint(0, 99)))

    def savepoint_rollback(self) -> None:
        """The outer write commits; the rolled-back savepoint's writes leave no trace."""
        with transaction.atomic():
            sale = Sale.objects.create(client_id=self.client(), amount=3)
            try:
                with transaction.atomic():
                    SaleLine.objects.create(sale=sale, sku=self.rng.choice(SKUS), quantity=50)
                    Sale.objects.filter(pk=sale.pk).update(amount=1000)
                    raise _RolledBack
            except _RolledBack:
                pass
        self.sales.append(sale.pk)

    def cascade_from_a_new_client(self) -> None:
        """A new key (a row of zeros), a sale moved to it, then the client deleted with
        its sales and their lines."""
        client = Client.objects.create(name="passing")
        if self.sales:
            pk = self.sales.pop(self.rng.randrange(len(self.sales)))
            Sale.objects.filter(pk=pk).update(client=client)
        client.delete()
