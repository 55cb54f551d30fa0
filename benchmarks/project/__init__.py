"""The Django project the benchmarks measure: one settings module, four variants.

The variant (``LIVE_MATVIEW_BENCH_VARIANT``) decides what is installed, so the baseline
is a process in which live_matview does not exist at all, not one where it is switched
off:

- ``baseline``: only the source models (``benchshop``); no live_matview, no pgtrigger.
- ``triggers``: live_matview with ``LIVE_MATVIEW_CAPTURE = "triggers"``.
- ``signals``: live_matview with ``LIVE_MATVIEW_CAPTURE = "signals"``.
- ``oldlib``: django-materialized-view 0.1.6.2 with the same two views.

``python -m benchmarks.project <command>`` is its ``manage.py`` (the worker runs that way).
"""
