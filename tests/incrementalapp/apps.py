from django.apps import AppConfig


class IncrementalappConfig(AppConfig):
    """Incremental views and their sources, apart from testapp so that its migrations
    stay as they are."""

    name = "tests.incrementalapp"
    label = "incrementalapp"
    default_auto_field = "django.db.models.BigAutoField"
