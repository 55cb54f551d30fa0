"""The README's demo (example_project's ``manage.py demo``) runs, twice, and says what it did."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

MANAGE_PY = Path(__file__).resolve().parent.parent / "example_project" / "manage.py"

pytestmark = pytest.mark.slow


def url_for(dbname: str) -> str:
    """A libpq URL of ``dbname`` on the test suite's own server (TCP or a socket directory)."""
    db = connection.settings_dict
    user = quote(db["USER"] or "")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    host, port = db["HOST"] or "", db["PORT"] or "5432"
    if host.startswith("/"):
        return f"postgresql://{user}{password}@/{dbname}?host={quote(host, safe='/')}&port={port}"
    return f"postgresql://{user}{password}@{host}:{port}/{dbname}"


@pytest.fixture
def demo_database_url(django_db_blocker) -> Iterator[str]:
    """A scratch database of its own: the demo runs migrate_with_views and must own it."""
    dbname = f"example_demo_{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{dbname}"')
    try:
        yield url_for(dbname)
    finally:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def run_demo(database_url: str) -> str:
    # pytest-django exported DJANGO_SETTINGS_MODULE=tests.settings; manage.py must pick its own.
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, str(MANAGE_PY), "demo"],
        env={**env, "DATABASE_URL": database_url},
        cwd="/",  # manage.py must find its own packages from any directory
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def dashboard(output: str) -> list[str]:
    """Everything from the dashboard heading on, but the refresh timings."""
    lines = output.split("4. The dashboard")[1].splitlines()
    return [line for line in lines if " ms  (" not in line]


def test_demo_runs_twice_and_shows_the_views_following_the_writes(demo_database_url) -> None:
    first = run_demo(demo_database_url)
    assert "create   shop_customertotals (shop.CustomerTotals): does not exist" in first
    assert "shop.CustomerTotals  CONCURRENTLY" in first
    assert "shop.ProductSales    plain" in first
    assert "(no unique index usable by CONCURRENTLY)" in first
    assert "after   CustomerTotals  Barbara Liskov         2   4,756.00" in first
    assert "It is the server of DATABASE_URL" in first
    assert len(first.splitlines()) < 80

    second = run_demo(demo_database_url)
    assert "Tables already up to date." in second
    assert "No changes." in second  # the views were left alone
    assert "Cleared the previous run: 31 orders" in second
    # Same data, same dashboard, same extra order.
    assert dashboard(second) == dashboard(first)
