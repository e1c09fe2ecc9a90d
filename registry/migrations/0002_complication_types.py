from django.db import migrations

# Frozen copy of the data dictionary's vocabulary at the time of this migration.
TYPES = [
    ("biliary_sclerosis", "Biliary sclerosis", "ctcae", False),
    ("chemical_hepatitis", "Chemical hepatitis", "ctcae", False),
    ("catheter_occlusion", "Catheter thrombosis / occlusion", "clavien_dindo", True),
    ("catheter_dislodgement", "Catheter dislodgement", "clavien_dindo", True),
    ("hepatic_artery_thrombosis", "Hepatic artery thrombosis or dissection", "clavien_dindo", True),
    ("extrahepatic_perfusion", "Extrahepatic perfusion", "clavien_dindo", True),
    ("pocket_infection", "Pump pocket infection", "clavien_dindo", False),
    ("pocket_seroma", "Pump pocket seroma / haematoma", "clavien_dindo", False),
    ("pump_malfunction", "Pump malfunction", "clavien_dindo", False),
    ("gastroduodenal_ulcer", "Gastroduodenal ulcer", "ctcae", False),
    ("other", "Other", "clavien_dindo", False),
]


def add_types(apps, schema_editor):
    ComplicationType = apps.get_model("registry", "ComplicationType")
    for code, name, grading, catheter in TYPES:
        ComplicationType.objects.update_or_create(
            code=code, defaults={"name": name, "grading_system": grading, "catheter_related": catheter}
        )


def remove_types(apps, schema_editor):
    apps.get_model("registry", "ComplicationType").objects.filter(code__in=[t[0] for t in TYPES]).delete()


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]
    operations = [migrations.RunPython(add_types, remove_types)]
