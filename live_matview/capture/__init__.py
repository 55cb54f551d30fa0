"""Noticing writes: statement-level triggers in the database, and the Django-side
statement capture that tells the writing process which views its transaction dirtied."""
