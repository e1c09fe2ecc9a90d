"""One implantation per patient and date (issue 11).

Before the constraint is added, existing duplicates are listed and the migration stops:
which of two rows is the true one is a data manager's decision, never a migration's.
"""

from django.db import migrations, models
from django.db.models import Count


def refuse_existing_duplicates(apps, schema_editor):
    Implantation = apps.get_model("registry", "Implantation")
    duplicates = list(
        Implantation.objects.values("patient_id", "patient__pseudonym", "patient__centre__code", "implanted_on")
        .annotate(rows=Count("id"))
        .filter(rows__gt=1)
        .order_by("patient__centre__code", "patient__pseudonym", "implanted_on")
    )
    if not duplicates:
        return
    lines = [
        f"  centre {d['patient__centre__code']}, patient {d['patient__pseudonym']}, {d['implanted_on']}: "
        f"{d['rows']} rows (ids {', '.join(str(i) for i in ids_of(Implantation, d))})"
        for d in duplicates
    ]
    raise RuntimeError(
        f"{len(duplicates)} patient(s) have more than one implantation on the same date. Delete or correct the "
        "duplicates (with a reason, through the admin), then migrate again:\n" + "\n".join(lines)
    )


def ids_of(Implantation, duplicate):
    return Implantation.objects.filter(
        patient_id=duplicate["patient_id"], implanted_on=duplicate["implanted_on"]
    ).values_list("id", flat=True)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0004_outcome_definitions"),
    ]

    operations = [
        migrations.RunPython(refuse_existing_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="implantation",
            constraint=models.UniqueConstraint(
                fields=("patient", "implanted_on"),
                name="implantation_one_per_patient_and_date",
                violation_error_message=(
                    "This patient already has an implantation on this date: it is the same implantation entered "
                    "twice. Open the existing one instead."
                ),
            ),
        ),
    ]
