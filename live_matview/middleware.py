"""``DeferredRefreshMiddleware``: one refresh per dirty view per request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .refresh.dispatch import deferred_refresh


class DeferredRefreshMiddleware:
    """Hold the refreshes a request causes until its response is ready.

    A view that several transactions of one request dirty is refreshed once, after the
    view function returns, still before the response is sent.
    """

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        with deferred_refresh():
            return self.get_response(request)
