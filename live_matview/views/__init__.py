"""What a view is: its declaration, its query (a QuerySet or a ``.sql`` file), the registry
of view models with the sources they declare, and the dependency graph between them.

The lowest stage: it imports only the leaves (``conf``, ``exceptions``, ``_compat``) and
Django, never the database-facing stages above it.
"""
