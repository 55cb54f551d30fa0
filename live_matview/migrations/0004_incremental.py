from django.db import migrations, models


class Migration(migrations.Migration):
    """Incremental views: the key marks their triggers write, and the log's refresh kind."""

    dependencies = [
        ("live_matview", "0003_refresh_log_lock_wait"),
    ]

    operations = [
        migrations.AddField(
            model_name="materializedviewrefreshlog",
            name="kind",
            field=models.CharField(
                default="full",
                help_text='"full" (the whole view) or "by_key" (the rows of the keys a write '
                "touched).",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="materializedviewrefreshlog",
            name="keys",
            field=models.PositiveIntegerField(
                blank=True, help_text="Keys a by-key refresh covered.", null=True
            ),
        ),
        migrations.CreateModel(
            name="KeyMark",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "view_name",
                    models.CharField(help_text="Meta.db_table of the view.", max_length=255),
                ),
                (
                    "key",
                    models.TextField(help_text="The view's primary-key value, as JSON text."),
                ),
                ("marked_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "indexes": [
                    models.Index(fields=["view_name", "id"], name="live_matview_keymark_view")
                ],
            },
        ),
    ]
