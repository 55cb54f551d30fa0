"""Settings of every benchmark process; the variant and the database come from the
environment, set by the orchestrator (``benchmarks.agents``)."""

import json
import os

VARIANT = os.environ.get("LIVE_MATVIEW_BENCH_VARIANT", "triggers")
VARIANTS = ("baseline", "triggers", "signals", "oldlib")
if VARIANT not in VARIANTS:
    raise RuntimeError(f"LIVE_MATVIEW_BENCH_VARIANT must be one of {VARIANTS}, not {VARIANT!r}")

SECRET_KEY = "benchmarks-only-not-a-secret"
DEBUG = False  # with DEBUG on, Django keeps every query in memory: that would be measured
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

DATABASES = {"default": json.loads(os.environ["LIVE_MATVIEW_BENCH_DB"])}

INSTALLED_APPS = ["benchmarks.project.shop", "benchmarks.project.ledger"]
if VARIANT in ("triggers", "signals"):
    INSTALLED_APPS += ["pgtrigger", "live_matview", "benchmarks.project.views"]
elif VARIANT == "oldlib":
    INSTALLED_APPS += ["django_materialized_view", "benchmarks.project.oldviews"]

LIVE_MATVIEW_CAPTURE = "signals" if VARIANT == "signals" else "triggers"
# Scenario 1 measures capture only, so writes just mark; scenarios that need refreshes
# switch the mode per request (it is read at call time).
LIVE_MATVIEW_REFRESH_MODE = os.environ.get("LIVE_MATVIEW_BENCH_REFRESH_MODE", "manual")

# django-materialized-view reads SQL files relative to BASE_DIR (unused: its views here
# come from QuerySets, but the attribute must exist).
BASE_DIR = os.path.dirname(os.path.abspath(__file__))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
