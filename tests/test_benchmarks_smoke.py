"""The benchmark suite runs end to end: ``python -m benchmarks --quick`` on the test server.

No timings are checked (timed tests are flaky and SPEC §6 wants bars read from tables);
only that every scenario prints its table (or says why it was skipped) and the run
exits 0. matplotlib and django-materialized-view are optional: without them the plot
and scenario 6 say "skipped".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

from tests.helpers import database_url

REPO = Path(__file__).resolve().parent.parent
HEADINGS = [
    "== 1. Write overhead of capture",
    "== 2. Coalescing",
    "== 3. Refresh overhead",
    "== 4. Freshness latency",
    "== 5. Scale",
    "== 6. Old library",
    "== 7. Incremental refresh",
]


@pytest.fixture
def scratch_database(django_db_blocker):
    """A database name the benchmark creates on the test server; dropped here too, in
    case the run died before its own clean-up."""
    name = f"live_matview_bench_smoke_{uuid.uuid4().hex[:8]}"
    yield name
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_quick_benchmark_prints_every_table(scratch_database, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    env["DATABASE_URL"] = database_url()
    json_path = tmp_path / "results.json"
    command = [sys.executable, "-m", "benchmarks", "--quick", "--json", str(json_path)]
    # Its own process group: on a timeout the benchmark's agents and workers go too.
    run = subprocess.Popen(
        [*command, "--db-name", scratch_database],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = run.communicate(timeout=600)  # a loaded CI machine is slow
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)
        stdout, stderr = run.communicate()
        pytest.fail(f"python -m benchmarks --quick took over 600 s:\n{stdout}\n{stderr}")
    assert run.returncode == 0, stdout + stderr
    for heading in HEADINGS:
        assert heading in stdout, f"{heading!r} missing from:\n{stdout}"
    assert "failed:" not in stdout, stdout
    document = json.loads(json_path.read_text())
    assert [scenario["number"] for scenario in document["scenarios"]] == [1, 2, 3, 4, 5, 6, 7]
