"""Incremental views under concurrency, with writers that are separate OS processes.

Each writer (``tests/incrementalapp/management/commands/write_on_shared_keys.py``) is its
own Django process with its own connection and background refresher, writing to keys
every other writer writes too. In ``worker`` mode the writers leave their marks and real
``live_matview_worker`` processes refresh.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from django.db.models import Max

from live_matview import refresh_dirty
from live_matview.models import DirtyMark, KeyMark, MaterializedViewRefreshLog
from tests.helpers import database_url, wait_until
from tests.incrementalapp.models import Client, ClientTotals, Sale, SkuTotals
from tests.test_incremental import VIEWS, assert_fresh
from tests.test_worker import ROOT, follow, workers

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Report:
    status: int
    operations: int
    errors: list[str]
    stderr: str


def run_writers(modes: list[str], operations: int, clients: list[int], *args: str) -> list[Report]:
    """Start a writer process per mode, release them together once all are ready (each
    takes seconds to set Django up), and wait for them to end."""
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "django", "write_on_shared_keys", *args]
            + [str(seed), str(operations), mode, ",".join(map(str, clients))],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed, mode in enumerate(modes)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.communicate()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            summary = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
            reports.append(
                Report(proc.returncode, summary.get("operations", 0), summary.get("errors"), err)
            )
        return reports
    finally:
        for proc in procs:
            if proc.poll() is None:  # pragma: no cover  (only when the test already failed)
                proc.kill()
                proc.wait()


def assert_no_errors(reports: list[Report], operations: int) -> None:
    for report in reports:
        assert (report.status, report.errors, report.stderr) == (0, [], ""), report
        assert report.operations == operations


def no_marks() -> bool:
    names = [view._meta.db_table for view in VIEWS]
    return not (
        KeyMark.objects.filter(view_name__in=names).exists()
        or DirtyMark.objects.filter(view_name__in=names).exists()
    )


def assert_exact_and_refreshed(since: int, allowed: set[str], required: set[str]) -> None:
    """No refresh failed; the views' refreshes since log row ``since`` came from
    ``allowed`` triggers, by key from each of ``required``; the views equal their queries."""
    assert not MaterializedViewRefreshLog.objects.filter(failed=True).exists()
    names = [view._meta.db_table for view in VIEWS]
    logs = MaterializedViewRefreshLog.objects.filter(id__gt=since, view_name__in=names)
    assert set(logs.values_list("trigger", flat=True)) <= allowed
    for view in (ClientTotals, SkuTotals):
        by_key = set(
            logs.filter(view_name=view._meta.db_table, kind="by_key").values_list(
                "trigger", flat=True
            )
        )
        assert by_key, view
        assert by_key >= required, (view, by_key)
    assert Sale.objects.exists()
    assert_fresh()


def shared_clients(count: int) -> list[int]:
    return [Client.objects.create(name=str(n)).pk for n in range(count)]


def writers_then_check(
    modes: list[str], operations: int, refreshers: int = 0, lock_wait: float | None = None
) -> None:
    """Writers in ``modes`` (``manual`` ones leave their marks to ``refreshers``
    ``live_matview_worker`` processes); ``lock_wait`` makes on-commit refreshes hand views
    to the background refresher as soon as another process holds them."""
    clients = shared_clients(3)
    refresh_dirty()  # the marks the last test's flush (a TRUNCATE) left: not the writers'
    since = MaterializedViewRefreshLog.objects.aggregate(last=Max("id"))["last"] or 0
    args = [] if lock_wait is None else ["--lock-wait", str(lock_wait)]
    with workers(refreshers, "--interval", "0.5") as procs:
        outputs = [follow(proc) for proc in procs]
        reports = run_writers(modes, operations, clients, *args)
        if refreshers:
            wait_until(no_marks, timeout=120, message="the workers to take every mark")
            assert all(proc.poll() is None for proc in procs), outputs
        else:
            # Every writer waited for its own refreshes: nothing may be left for anyone.
            assert no_marks()
    problems = [
        line for output in outputs for line in output if "failed" in line or "Error" in line
    ]
    assert problems == []
    assert_no_errors(reports, operations)
    own = {"worker" if mode == "manual" else mode for mode in modes}
    allowed = own | ({"worker"} if refreshers else set())
    if "on_commit" in own:  # an on-commit refresh that waited past LIVE_MATVIEW_LOCK_WAIT
        allowed.add("async")  # handed the view to the background refresher
    # With one kind of writer, only its refreshes can have taken the keys; with several,
    # any one kind may have taken all of them.
    assert_exact_and_refreshed(since, allowed, required=own if len(own) == 1 else set())


SCENARIOS = {
    "on_commit": {"modes": ["on_commit"] * 3},
    "async": {"modes": ["async"] * 3},
    "worker": {"modes": ["manual"] * 3, "refreshers": 1},
}

BIG_SCENARIOS = {
    "on_commit": {"modes": ["on_commit"] * 6},
    "on_commit-hand-offs": {"modes": ["on_commit"] * 6, "lock_wait": 0.001},
    "async": {"modes": ["async"] * 6},
    "worker": {"modes": ["manual"] * 6, "refreshers": 2},
    "mixed": {"modes": ["on_commit", "async", "manual"] * 2, "refreshers": 2, "lock_wait": 0.001},
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_writer_processes_on_overlapping_keys_leave_the_views_exact(scenario):
    writers_then_check(operations=20, **SCENARIOS[scenario])


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(BIG_SCENARIOS))
def test_many_writer_processes_on_overlapping_keys_leave_the_views_exact(scenario):
    writers_then_check(operations=200, **BIG_SCENARIOS[scenario])
