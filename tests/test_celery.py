"""``LIVE_MATVIEW_ASYNC = "celery"`` with a real Redis broker and a real Celery worker."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test.utils import override_settings

from live_matview import refresh_dirty
from live_matview.testing import capture_refreshes
from tests.helpers import database_url, fetch, wait_until
from tests.testapp.models import Customer, CustomerTotals, Order

# One xdist worker runs this module: its module-scoped broker fixture then runs once.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("celery")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _broker_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def broker():
    """The producer side (this process sends the tasks), on a queue of its own.

    The Redis database is shared by every suite running on the machine (another checkout,
    CI): on the default queue one suite's worker would take another's tasks. A fresh queue
    needs no FLUSHDB either, which would drop other suites' queued tasks."""
    url = settings.CELERY_BROKER_URL
    if not _broker_answers(url):
        if os.environ.get("LIVE_MATVIEW_REQUIRE_REDIS"):
            pytest.fail(f"No Redis at {url}, and LIVE_MATVIEW_REQUIRE_REDIS is set.")
        pytest.skip(f"No Redis at {url}: start one to run the Celery tests.")
    import redis

    from tests.celery_app import app

    queue = f"live_matview_tests_{uuid.uuid4().hex[:12]}"
    app.conf.task_default_queue = queue
    yield app
    redis.Redis.from_url(url).delete(queue)


@contextmanager
def celery_worker(queue: str):
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery_app",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--queues",
            queue,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()


@pytest.fixture
def async_celery(monkeypatch):
    monkeypatch.setattr(CustomerTotals, "refresh_mode", "async")
    with override_settings(LIVE_MATVIEW_ASYNC="celery"):
        yield


@pytest.mark.usefixtures("async_celery")
def test_async_views_refresh_through_celery_and_duplicates_collapse(broker, monkeypatch):
    monkeypatch.setattr(CustomerTotals, "refresh_debounce", 1.0)  # the task's countdown
    customer = Customer.objects.create(name="Ada")
    with capture_refreshes() as refreshes:
        for amount in range(1, 11):
            Order.objects.create(customer=customer, amount=amount)
        # Ten commits, one queued task: the other nine found the view already claimed.
        queued = fetch(
            "SELECT task_queued_at IS NOT NULL FROM live_matview_managedview "
            "WHERE view_name = 'testapp_customertotals'"
        )
        assert queued == [(True,)]
        assert refreshes.count(CustomerTotals) == 0  # not refreshed by the writer
        with celery_worker(broker.conf.task_default_queue):
            wait_until(
                lambda: list(CustomerTotals.objects.values_list("orders", flat=True)) == [10],
                timeout=60,
                message="the Celery worker's refresh",
            )
    logs = fetch(
        "SELECT count(*) FROM live_matview_materializedviewrefreshlog "
        "WHERE view_name = 'testapp_customertotals' AND trigger = 'async'"
    )
    assert logs == [(1,)]
    assert fetch(
        "SELECT task_queued_at FROM live_matview_managedview "
        "WHERE view_name = 'testapp_customertotals'"
    ) == [(None,)]


OUTAGE_WRITER = """
from tests.celery_app import app  # sets up Django; its broker is the dead one
from django.conf import settings
from tests.testapp.models import Customer, CustomerTotals, Order

settings.LIVE_MATVIEW_ASYNC = "celery"
CustomerTotals.refresh_mode = "async"
Order.objects.create(customer=Customer.objects.get(), amount=3)
print("committed")
"""


def test_broker_outage_leaves_the_marks_for_the_worker(broker):
    """A process whose broker is down: its commit succeeds, its marks survive."""
    Customer.objects.create(name="Ada")
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "CELERY_BROKER_URL": "redis://127.0.0.1:9/0",  # nothing listens on the discard port
    }
    result = subprocess.run(
        [sys.executable, "-c", OUTAGE_WRITER],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "committed" in result.stdout
    assert "its marks wait for the worker" in result.stderr
    assert list(CustomerTotals.objects.values_list("orders", flat=True)) == []
    # The claim was released and the marks wait for the worker.
    assert fetch(
        "SELECT task_queued_at FROM live_matview_managedview "
        "WHERE view_name = 'testapp_customertotals'"
    ) == [(None,)]
    assert fetch(
        "SELECT count(*) FROM live_matview_dirtymark WHERE view_name = 'testapp_customertotals'"
    ) == [(1,)]
    refresh_dirty()
    assert list(CustomerTotals.objects.values_list("orders", flat=True)) == [1]
