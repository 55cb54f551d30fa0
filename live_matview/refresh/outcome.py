"""Why a refresh did not run: the answer ``refresh_view`` and ``refresh_by_key`` give
instead of a log row."""

from __future__ import annotations

import enum

__all__ = ["Skipped"]


class Skipped(enum.Enum):
    """Why ``refresh_view`` did not refresh."""

    BUSY = "another process holds the view's lock"
    HANDED_OFF = "waited for the lock as long as allowed: the caller hands the view on"
    CLEAN = "no marks left: a refresh after the write already covered it"
