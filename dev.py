#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.10+ (standard library only, by design).

    python3 dev.py test [pytest args...]   run the test suite (in parallel; --slow: all of it)
    python3 dev.py demo                    run the example project's demo
    python3 dev.py lint                    ruff check, ruff format --check, mypy
    python3 dev.py stop-db                 stop the embedded servers (tests, demo)

The first run creates .venv/ and installs the project into it; later runs reinstall only when
pyproject.toml changes. Without DATABASE_URL the tests and the demo use an embedded
PostgreSQL in .pgdata/, which they start and stop themselves.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
STAMP = VENV / ".live_matview-installed"  # holds the hash of the pyproject.toml installed


def run(*cmd: str | Path) -> int:
    """Run a command in the repo root and return its exit code.

    On Ctrl-C keep waiting: the child got the same SIGINT and must finish its own clean-up
    (such as stopping the embedded server) rather than be killed.
    """
    proc = subprocess.Popen([str(c) for c in cmd], cwd=ROOT)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


def bootstrap() -> None:
    """Create .venv and install the project with its dev extras, when missing or outdated."""
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        if run(sys.executable, "-m", "venv", VENV) != 0:
            sys.exit("Could not create .venv (on Debian or Ubuntu: apt install python3-venv).")
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    print('Installing the project into .venv: pip install -e ".[dev]" ...', flush=True)
    pip = (PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "--quiet")
    if run(*pip, "-e", ".[dev]") != 0:
        sys.exit("pip install failed; see above.")
    STAMP.write_text(digest + "\n")


def describe_database() -> str:
    """Which database answers, without printing a password."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        return "Database: embedded PostgreSQL in .pgdata/"
    parts = urlsplit(re.sub(r"(password=)[^&]*", r"\1***", url))
    userinfo, at, host = parts.netloc.rpartition("@")
    if ":" in userinfo:
        parts = parts._replace(netloc=userinfo.split(":")[0] + ":***" + at + host)
    return "Database: DATABASE_URL=" + urlunsplit(parts)


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "stop-db":
        if not PYTHON.exists():
            print("No .venv, so no embedded server to stop.")
            return 0
        codes = [
            run(PYTHON, "-m", "live_matview.embedded", "stop", "--data-dir", data_dir)
            for data_dir in (".pgdata", "example_project/.pgdata")
        ]
        return max(codes)
    if command not in ("test", "demo", "lint"):
        print(__doc__)
        return 0 if command in ("help", "-h", "--help") else 2
    bootstrap()
    if command == "test":
        print(describe_database(), flush=True)
        return run(PYTHON, "-m", "pytest", *args)
    if command == "demo":
        return run(PYTHON, "example_project/manage.py", "demo", *args)
    checks = [
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "."),
        ("mypy",),
    ]
    failed = [" ".join(c) for c in checks if run(PYTHON, "-m", *c) != 0]
    if failed:
        print("Failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.version_info < (3, 10):  # noqa: UP036 - a clear message beats a pip resolver error
        sys.exit("live_matview needs Python 3.10 or newer.")
    sys.exit(main(sys.argv[1:]))
