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


def __getattr__(name: str) -> Any:
    # The model base class needs Django's app registry, so it is imported on first use:
    # ``import live_matview`` stays safe in settings.py.
    if name == "MaterializedViewModel":
        from .base_model import MaterializedViewModel

        return MaterializedViewModel
    raise AttributeError(f"module 'live_matview' has no attribute {name!r}")
