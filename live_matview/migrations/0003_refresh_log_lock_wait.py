from django.db import migrations, models


class Migration(migrations.Migration):
    """The refresh log tells the lock wait apart from the refresh, and is indexed for
    finding each view's latest row (status, pruning)."""

    dependencies = [
        ("live_matview", "0002_capture"),
    ]

    operations = [
        migrations.AlterField(
            model_name="materializedviewrefreshlog",
            name="duration",
            field=models.DurationField(
                help_text="The refresh itself, from the moment it held the view's lock.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="materializedviewrefreshlog",
            name="lock_wait",
            field=models.DurationField(
                help_text="Time spent waiting for the view's lock before the refresh.",
                null=True,
            ),
        ),
        migrations.AddIndex(
            model_name="materializedviewrefreshlog",
            index=models.Index(fields=["view_name", "updated_at"], name="live_matview_log_view"),
        ),
    ]
