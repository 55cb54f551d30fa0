"""One function per ``LIVE_MATVIEW_*`` setting, read at call time so ``override_settings`` works.

Values are remembered until a ``setting_changed`` signal (``override_settings``, the
``settings`` fixture) says otherwise: the capture path reads settings on every write, and
``getattr`` of a setting that is not set costs an exception each time (several µs).

Each default is written here once; docs/settings.md describes them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

CAPTURE_MODES = ("triggers", "signals")
REFRESH_MODES = ("on_commit", "async", "manual")
ASYNC_BACKENDS = ("thread", "celery")


_MISSING, _UNREAD = object(), object()
_read: dict[str, Any] = {}


def _get(name: str, default: Any) -> Any:
    value = _read.get(name, _UNREAD)
    if value is _UNREAD:
        value = _read[name] = getattr(settings, f"LIVE_MATVIEW_{name}", _MISSING)
    return default if value is _MISSING else value


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("LIVE_MATVIEW_"):
        _read.clear()


setting_changed.connect(_forget, dispatch_uid="live_matview.conf")


def capture() -> str:
    """How writes are noticed: ``"triggers"`` (every client) or ``"signals"`` (Django only)."""
    return str(_get("CAPTURE", "triggers"))


def refresh_mode() -> str:
    """Default ``refresh_mode`` of views that do not set their own."""
    return str(_get("REFRESH_MODE", "on_commit"))


def async_backend() -> str:
    """Where ``async`` refreshes run: an in-process ``"thread"`` or ``"celery"``."""
    return str(_get("ASYNC", "thread"))


def advisory_lock_namespace() -> int:
    """First key of the two-int advisory locks this library takes (change it on a clash)."""
    return int(_get("LOCK_NAMESPACE", 0x4C4D5600))  # "LMV\0"


def schema() -> str:
    """Schema of the library's tables and ``live_matview_mark()``, as the capture trigger
    names it (writers with another ``search_path`` must still find it)."""
    return str(_get("SCHEMA", "public"))


def retry_base() -> float:
    """Seconds before a view that failed once is tried again; doubled per further failure."""
    return float(_get("RETRY_BASE", 5.0))


def retry_max() -> float:
    """The longest back-off, in seconds, however often a view failed."""
    return float(_get("RETRY_MAX", 3600.0))


def retry_backoff(failures: int) -> float:
    """Seconds before a view that failed ``failures`` times in a row is tried again
    (``live_matview_refresh()`` computes the same on the server, from the two settings)."""
    return float(min(retry_max(), retry_base() * 2 ** max(0, failures - 1)))


def cache_seconds() -> float:
    """How long a process trusts its cached view graph and source map before reading them
    again, so that views and triggers changed by another process are noticed."""
    return float(_get("CACHE_SECONDS", 60.0))


def lock_wait() -> float | None:
    """Longest wait, in seconds, of an on-commit refresh for a view another process is
    refreshing; past it the view is handed to the background refresher. ``None``: no limit."""
    value = _get("LOCK_WAIT", 2.0)
    if value is None:
        return None
    return _seconds("LOCK_WAIT", value)


def log_retention() -> timedelta | None:
    """How long refresh log rows are kept (the latest row of each view always is).
    ``None`` keeps them forever."""
    value = _get("LOG_RETENTION", timedelta(days=14))
    if value is None or isinstance(value, timedelta):
        return value
    return timedelta(seconds=_seconds("LOG_RETENTION", value))


def _seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if seconds < 0 or isinstance(value, bool):
        raise ImproperlyConfigured(
            f"LIVE_MATVIEW_{name} = {value!r} is not a number of seconds: set it to a "
            "number >= 0 (or None)."
        )
    return seconds


def sync_on_migrate() -> bool:
    """Whether plain ``migrate`` brings the views in line after the last migration, as
    ``migrate_with_views`` does."""
    return bool(_get("SYNC_ON_MIGRATE", True))


def sync_lock_timeout() -> float:
    """Seconds a view sync waits for another one's lock before it fails, naming the holder."""
    return float(_get("SYNC_LOCK_TIMEOUT", 300.0))


def incremental_max_share() -> float:
    """Above this share of an incremental view's rows (PostgreSQL's estimate), a refresh of
    the keys a write touched rebuilds the whole view instead: cheaper for large changes."""
    return float(_get("INCREMENTAL_MAX_SHARE", 0.25))
