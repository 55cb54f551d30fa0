from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.backends.signals import connection_created


class LiveMatviewConfig(AppConfig):
    name = "live_matview"
    verbose_name = "Live materialized views"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .capture.statements import install
        from .capture.triggers import register_triggers

        register_triggers()
        connection_created.connect(_install_capture, dispatch_uid="live_matview.capture")
        for connection in connections.all(initialized_only=True):
            install(connection)


def _install_capture(sender: Any, connection: Any, **kwargs: Any) -> None:
    from .capture.statements import install

    install(connection)
