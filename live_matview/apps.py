from django.apps import AppConfig


class LiveMatviewConfig(AppConfig):
    name = "live_matview"
    verbose_name = "Live materialized views"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
