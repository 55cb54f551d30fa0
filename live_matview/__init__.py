"""PostgreSQL materialized views as Django models that keep themselves fresh."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("live-matview")
except PackageNotFoundError:  # pragma: no cover  (running from a source tree)
    __version__ = "0.0.0"

__all__ = [
    "DependencyCycleError",
    "LiveMatviewError",
    "MaterializedViewModel",
    "RefreshError",
    "SyncError",
    "ViewDefinitionError",
    "__version__",
    "deferred_refresh",
    "refresh_dirty",
]

from .exceptions import (
    DependencyCycleError,
    LiveMatviewError,
    RefreshError,
    SyncError,
    ViewDefinitionError,
)

if TYPE_CHECKING:
    from .base_model import MaterializedViewModel
    from .refresh.dispatch import deferred_refresh
    from .refresh.passes import refresh_dirty

_LAZY = {
    "MaterializedViewModel": "base_model",
    "deferred_refresh": "refresh.dispatch",
    "refresh_dirty": "refresh.passes",
}


def __getattr__(name: str) -> Any:
    # These need Django's app registry, so they are imported on first use:
    # ``import live_matview`` stays safe in settings.py.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'live_matview' has no attribute {name!r}")
