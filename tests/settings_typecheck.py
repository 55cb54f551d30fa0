"""Settings for mypy's Django plugin, which imports them: no database server is started."""

from tests.settings_base import *  # noqa: F403

DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "unused"}}
