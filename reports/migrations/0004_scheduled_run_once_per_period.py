from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reports", "0003_outlier_reviews_case_mix_email_copy"),
    ]

    operations = [
        migrations.AddField(
            model_name="reportrun",
            name="scheduled",
            field=models.BooleanField(
                default=False,
                help_text="Started by the monthly schedule. A period has at most one such run, however often beat fires.",
            ),
        ),
        migrations.AddConstraint(
            model_name="reportrun",
            constraint=models.UniqueConstraint(
                condition=models.Q(("scheduled", True)),
                fields=("period",),
                name="report_run_one_scheduled_per_period",
            ),
        ),
    ]
