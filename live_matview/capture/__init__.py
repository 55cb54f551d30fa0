"""Noticing writes: statement-level triggers in the database, the Django-side statement
capture that tells the writing process which tables its transaction wrote, and the map
from tables to the views that read them. Imports ``schema``, ``views`` and the leaves.
"""
