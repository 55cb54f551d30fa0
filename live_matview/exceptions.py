"""Errors that callers of live_matview may want to catch."""

from __future__ import annotations


class LiveMatviewError(Exception):
    """Base class of every error this library raises on purpose."""


class ViewDefinitionError(LiveMatviewError):
    """A view's query cannot be built: bad ``get_query_from_queryset`` or missing SQL file."""


class DependencyCycleError(LiveMatviewError):
    """Views that read each other in a loop have no order to be created or refreshed in."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__(
            "Materialized views depend on each other in a cycle: "
            + " -> ".join(cycle)
            + ". Break the cycle by removing one of these reads."
        )


class SyncError(LiveMatviewError):
    """``migrate_with_views`` could not bring the views in line; nothing was changed."""


class RefreshError(LiveMatviewError):
    """A refresh failed. It has been logged in ``MaterializedViewRefreshLog`` already."""

    def __init__(self, message: str, *, view_name: str = "", log_id: int | None = None) -> None:
        self.view_name = view_name
        self.log_id = log_id
        super().__init__(message)
