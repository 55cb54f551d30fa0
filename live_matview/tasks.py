"""Where Celery's ``app.autodiscover_tasks(["live_matview"])`` finds the refresh task.

The task itself lives in ``refresh/celery_backend.py``; this module only names it in the
place Celery looks. Importing it needs Celery (``pip install "live-matview[celery]"``).
"""

from .refresh.celery_backend import refresh_view_task

__all__ = ["refresh_view_task"]
