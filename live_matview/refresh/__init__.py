"""Making views fresh: one view's refresh, a pass over many in dependency order, and who
runs it (on commit, the background thread, Celery, the worker). The top stage: it may
import every stage below it; nothing below imports it.
"""
