"""Settings for the test suite: the database is $DATABASE_URL, or an embedded PostgreSQL."""

from live_matview.embedded import database_settings
from tests.settings_base import *  # noqa: F403
from tests.settings_base import BASE_DIR

DATABASES = {"default": database_settings(BASE_DIR / ".pgdata")}

# A second database on the same server, for the multiple-database tests.
DATABASES["other"] = {**DATABASES["default"], "NAME": f"{DATABASES['default']['NAME']}_other"}
