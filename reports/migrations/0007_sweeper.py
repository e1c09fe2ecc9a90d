from django.db import migrations, models

TASK_NAME = "Send again report tasks the broker lost (every 5 minutes)"


def schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_five_minutes, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME,
        defaults={"task": "reports.tasks.sweep_unfinished_runs", "interval": every_five_minutes, "enabled": True},
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0006_data_releases"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [
        migrations.AddField(
            model_name="reportrun",
            name="dispatched_at",
            field=models.DateTimeField(
                blank=True,
                null=True,
                help_text="When the run's fan-out task was last handed to the broker (reports.tasks.sweep_unfinished_runs).",
            ),
        ),
        migrations.AddField(
            model_name="centrereport",
            name="dispatched_at",
            field=models.DateTimeField(
                blank=True,
                null=True,
                help_text="When a task for this report was last handed to the broker (reports.tasks.sweep_unfinished_runs).",
            ),
        ),
        migrations.RunPython(schedule, unschedule),
    ]
