"""Signals sent around refreshes; ``sender`` is the view model."""

from django.dispatch import Signal

#: Sent after every successful refresh, with ``log`` (the log row) and ``using``.
view_refreshed = Signal()

#: Sent after a failed refresh, with ``log``, ``error`` (the exception) and ``using``.
refresh_failed = Signal()
