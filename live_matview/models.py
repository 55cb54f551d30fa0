"""The library's own tables: the refresh log (compatible with django-materialized-view)
and the record of the views ``migrate_with_views`` manages."""

from __future__ import annotations

from typing import Any

from django.db import models, router, transaction


class MaterializedViewRefreshLog(models.Model):
    """One row per refresh attempt, successful or not.

    ``updated_at``, ``duration``, ``failed`` and ``view_name`` keep the meaning they had in
    django-materialized-view (``updated_at`` is when the refresh ended).
    """

    class Trigger(models.TextChoices):
        MANUAL = "manual", "manual"
        COMMAND = "command", "refresh_views command"
        ON_COMMIT = "on_commit", "on commit"
        ASYNC = "async", "async"
        WORKER = "worker", "worker"
        ADMIN = "admin", "admin"
        DRAIN = "drain", "refresh_dirty()"
        RETRY = "retry", "retry after a failure"

    view_name = models.CharField(max_length=255, db_index=True)
    database = models.CharField(max_length=100, default="default")
    started_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField(auto_now_add=True, db_index=True)
    duration = models.DurationField(
        null=True, help_text="The refresh itself, from the moment it held the view's lock."
    )
    lock_wait = models.DurationField(
        null=True, help_text="Time spent waiting for the view's lock before the refresh."
    )
    failed = models.BooleanField(default=False)
    concurrently = models.BooleanField(null=True)
    reason = models.CharField(max_length=255, blank=True, help_text="Why this refresh mode.")
    trigger = models.CharField(max_length=32, choices=Trigger.choices, default=Trigger.MANUAL)
    error = models.TextField(blank=True)
    kind = models.CharField(
        max_length=16,
        default="full",
        help_text='"full" (the whole view) or "by_key" (the rows of the keys a write touched).',
    )
    keys = models.PositiveIntegerField(
        null=True, blank=True, help_text="Keys a by-key refresh covered."
    )

    class Meta:
        ordering = ("-updated_at", "-id")
        get_latest_by = "updated_at"
        verbose_name = "materialized view refresh"
        verbose_name_plural = "materialized view refreshes"
        # The latest row of each view, for the status page and for pruning the log.
        indexes = [models.Index(fields=["view_name", "updated_at"], name="live_matview_log_view")]

    def __str__(self) -> str:
        outcome = "failed" if self.failed else "ok"
        return f"{self.view_name} at {self.updated_at:%Y-%m-%d %H:%M:%S} ({outcome})"


class ManagedView(models.Model):
    """A materialized view that ``migrate_with_views`` created or adopted.

    Only views recorded here (or by django-materialized-view) are ever dropped, so a
    view someone made by hand is never touched.
    """

    view_name = models.CharField(max_length=255, unique=True, help_text="Meta.db_table")
    app_label = models.CharField(max_length=100)
    model_name = models.CharField(max_length=100)
    indexes = models.JSONField(default=list, help_text="Index names this library created.")
    index_digest = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_retry_at = models.DateTimeField(
        null=True, blank=True, help_text="Passes that honour back-off skip the view until then."
    )
    last_error = models.TextField(blank=True)
    task_queued_at = models.DateTimeField(
        null=True, blank=True, help_text="A Celery refresh of this view is queued since then."
    )

    class Meta:
        ordering = ("view_name",)

    def __str__(self) -> str:
        return self.view_name


class DirtyMark(models.Model):
    """A view that a committed write made stale; deleted by the refresh that covers it.

    Rows are only ever inserted by writers (one per source table and transaction, by the
    capture trigger or the Django-side capture) and deleted by refreshers, so writers never
    wait on each other here.
    """

    view_name = models.CharField(max_length=255, help_text="Meta.db_table of the view.")
    source = models.CharField(max_length=255, blank=True, help_text="The table written.")
    marked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["view_name", "id"], name="live_matview_mark_view")]

    def __str__(self) -> str:
        return f"{self.view_name} (from {self.source})"


class MaterializedViewMigrations(models.Model):
    """django-materialized-view's record of the views it created, over its own table.

    Kept importable for code written against that library; live_matview reads the table
    (its active rows are views it may adopt or drop) but records its own views in
    ``ManagedView``. The model belongs to no installed app, so no migration of ours creates
    or alters the table: it exists only where the old library made it.
    """

    applied = models.DateTimeField(auto_now_add=True)
    app = models.CharField(max_length=255)
    view_name = models.CharField(max_length=255)
    hash = models.CharField(max_length=255)
    deleted = models.BooleanField(default=False)

    class Meta:
        app_label = "live_matview_legacy"
        db_table = "django_materialized_view_materializedviewmigrations"
        managed = False

    def __str__(self) -> str:
        return f"{self.app}_{self.view_name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """As before: a new active row retires the older active rows of the same view."""
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            if not self.deleted:
                type(self)._default_manager.using(using).filter(
                    app=self.app, view_name=self.view_name, deleted=False
                ).exclude(pk=self.pk).update(deleted=True)
            super().save(*args, **kwargs)


class KeyMark(models.Model):
    """A key of an incremental view whose rows a committed write changed.

    Inserted by the key-capture triggers in the writer's transaction, deleted by the
    by-key refresh that recomputes the key's rows (``refresh/by_key.py``).
    """

    view_name = models.CharField(max_length=255, help_text="Meta.db_table of the view.")
    key = models.TextField(help_text="The view's primary-key value, as JSON text.")
    marked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["view_name", "id"], name="live_matview_keymark_view")]

    def __str__(self) -> str:
        return f"{self.view_name} key {self.key}"
