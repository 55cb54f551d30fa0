"""The same two views declared with django-materialized-view 0.1.6.2.

The app label is ``benchviews`` too, so the models name the very views live_matview
created: both libraries refresh the same relation. Only the ``oldlib`` process installs it.
"""
