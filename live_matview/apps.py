"""The app config: ``ready()`` registers the checks, the capture triggers, the connection
hooks and the migrate hooks (the view sync after ``migrate``), and connects the capture
stage to the refresh stage. No DDL here."""

from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate, pre_migrate


class LiveMatviewConfig(AppConfig):
    name = "live_matview"
    verbose_name = "Live materialized views"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: Django imports apps.py before any model is
        # loaded, and these modules import models.
        from . import checks  # noqa: F401  (registers the system checks)
        from .capture.statements import install, on_writes_committed
        from .capture.triggers import register_triggers
        from .migrate_hooks import migrate_finished, migrate_starting
        from .refresh.dispatch import writes_committed

        register_triggers()
        on_writes_committed(writes_committed)
        connection_created.connect(_install_capture, dispatch_uid="live_matview.capture")
        # Plain migrate brings the views in line too (LIVE_MATVIEW_SYNC_ON_MIGRATE).
        pre_migrate.connect(migrate_starting, dispatch_uid="live_matview.pre_migrate")
        post_migrate.connect(migrate_finished, dispatch_uid="live_matview.post_migrate")
        for connection in connections.all(initialized_only=True):
            install(connection)


def _install_capture(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Django's app-loading order: this module may not import models at its top.
    from .capture.statements import install

    install(connection)
