"""Seeds the MSKCC FUDR dose-modification table and schedules the nightly data-quality checks (issue 12).

The bands are a frozen copy of ``registry.data_quality.PUBLISHED_FUDR_TABLE`` at the time of this
migration (tests/test_fudr_dose_table.py checks they agree); the coordinator adjusts them in the admin
afterwards. Bilirubin is stored in µmol/L: the table's 1.2 mg/dL reference cut is 1.2 × 17.1 = 20.52 µmol/L.
"""

from decimal import Decimal

from django.db import migrations

# (analyte, reference from, reference below, ratio from, ratio below, % of the FUDR dose; 0 = hold)
BANDS = [
    ("ast", "0", "50", "0", "2", 100),
    ("ast", "0", "50", "2", "3", 80),
    ("ast", "0", "50", "3", "4", 50),
    ("ast", "0", "50", "4", None, 0),
    ("ast", "50", None, "0", "1.5", 100),
    ("ast", "50", None, "1.5", "2", 80),
    ("ast", "50", None, "2", "3", 50),
    ("ast", "50", None, "3", None, 0),
    ("alp", "0", "90", "0", "1.5", 100),
    ("alp", "0", "90", "1.5", "2", 50),
    ("alp", "0", "90", "2", None, 0),
    ("alp", "90", None, "0", "1.2", 100),
    ("alp", "90", None, "1.2", "1.5", 50),
    ("alp", "90", None, "1.5", None, 0),
    ("bilirubin", "0", "20.52", "0", "1.5", 100),
    ("bilirubin", "0", "20.52", "1.5", "2", 50),
    ("bilirubin", "0", "20.52", "2", None, 0),
    ("bilirubin", "20.52", None, "0", "1.2", 100),
    ("bilirubin", "20.52", None, "1.2", "1.5", 50),
    ("bilirubin", "20.52", None, "1.5", None, 0),
]

TASK_NAME = "Nightly data-quality checks"


def _decimal(value):
    return None if value is None else Decimal(value)


def seed_bands(apps, schema_editor):
    FudrDoseBand = apps.get_model("registry", "FudrDoseBand")
    for analyte, ref_from, ref_below, ratio_from, ratio_below, percent in BANDS:
        FudrDoseBand.objects.update_or_create(
            analyte=analyte,
            reference_from=_decimal(ref_from),
            ratio_from=_decimal(ratio_from),
            defaults={
                "reference_below": _decimal(ref_below),
                "ratio_below": _decimal(ratio_below),
                "dose_percent": percent,
            },
        )


def unseed_bands(apps, schema_editor):
    apps.get_model("registry", "FudrDoseBand").objects.all().delete()


def schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="2", day_of_month="*", month_of_year="*", day_of_week="*", timezone="Europe/London"
    )
    PeriodicTask.objects.update_or_create(
        name=TASK_NAME, defaults={"task": "registry.tasks.check_data_quality", "crontab": crontab, "enabled": True}
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0009_data_queries"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [
        migrations.RunPython(seed_bands, unseed_bands),
        migrations.RunPython(schedule, unschedule),
    ]
