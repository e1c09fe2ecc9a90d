# Outcome definitions (issue 8): every complication type gets a category, and the pump
# end-reason vocabulary is split so that each reason is either a pump failure or a
# competing end of use.

from django.db import migrations, models

# The data dictionary's types (0002) by category; a type the coordinator added since is
# technical when it was catheter-related, otherwise 'other' until the coordinator says.
TECHNICAL = {
    "catheter_occlusion",
    "catheter_dislodgement",
    "hepatic_artery_thrombosis",
    "extrahepatic_perfusion",
    "pocket_infection",
    "pocket_seroma",
    "pump_malfunction",
}
TOXICITY = {"biliary_sclerosis", "chemical_hepatitis", "gastroduodenal_ulcer"}


def set_categories(apps, schema_editor):
    ComplicationType = apps.get_model("registry", "ComplicationType")
    ComplicationType.objects.filter(code__in=TECHNICAL).update(category="technical")
    ComplicationType.objects.filter(code__in=TOXICITY).update(category="toxicity")
    ComplicationType.objects.filter(catheter_related=True).update(category="technical")


def split_end_reasons(apps, schema_editor):
    """'complication' becomes 'toxicity' when only a toxicity preceded the end of use, otherwise
    'technical_complication' (the common case for an HAI pump, and the one the old pump
    functional survival already counted as a failure, so no failure is lost). History rows keep the
    value they were saved with."""
    FollowUp = apps.get_model("registry", "FollowUp")
    Complication = apps.get_model("registry", "Complication")
    for follow_up in FollowUp.objects.filter(pump_end_reason="complication").iterator():
        categories = set(
            Complication.objects.filter(
                implantation_id=follow_up.implantation_id, onset_on__lte=follow_up.pump_ended_on
            ).values_list("type__category", flat=True)
        )
        reason = "toxicity" if categories and "technical" not in categories and "toxicity" in categories else "technical_complication"
        FollowUp.objects.filter(pk=follow_up.pk).update(pump_end_reason=reason)


def merge_end_reasons(apps, schema_editor):
    FollowUp = apps.get_model("registry", "FollowUp")
    FollowUp.objects.filter(pump_end_reason__in=["technical_complication", "toxicity"]).update(pump_end_reason="complication")
    FollowUp.objects.filter(pump_end_reason="resection").update(pump_end_reason="other")


class Migration(migrations.Migration):

    dependencies = [
        ('registry', '0003_entry_timestamps'),
    ]

    operations = [
        migrations.AddField(
            model_name='complicationtype',
            name='category',
            field=models.CharField(choices=[('technical', 'Technical (catheter, pump, pocket, artery, extrahepatic perfusion)'), ('toxicity', 'Toxicity (biliary sclerosis, chemical hepatitis, gastroduodenal ulcer)'), ('other', 'Other')], default='other', help_text='Technical complications count from implantation over every implantation; toxicities from the first dose over treated implantations (reports.outcomes).', max_length=20),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name='historicalcomplicationtype',
            name='category',
            field=models.CharField(choices=[('technical', 'Technical (catheter, pump, pocket, artery, extrahepatic perfusion)'), ('toxicity', 'Toxicity (biliary sclerosis, chemical hepatitis, gastroduodenal ulcer)'), ('other', 'Other')], default='other', help_text='Technical complications count from implantation over every implantation; toxicities from the first dose over treated implantations (reports.outcomes).', max_length=20),
            preserve_default=False,
        ),
        migrations.RunPython(set_categories, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='followup',
            name='pump_end_reason',
            field=models.CharField(blank=True, choices=[('technical_complication', 'Pump failure: technical complication (catheter, pump, pocket, artery, extrahepatic perfusion)'), ('pump_failure', 'Pump failure: pump or catheter malfunction'), ('treatment_completed', 'End of use: treatment completed'), ('resection', 'End of use: conversion to resection'), ('progression', 'End of use: progression'), ('toxicity', 'End of use: toxicity'), ('patient_choice', 'End of use: patient choice'), ('other', 'End of use: other reason')], max_length=30),
        ),
        migrations.AlterField(
            model_name='historicalfollowup',
            name='pump_end_reason',
            field=models.CharField(blank=True, choices=[('technical_complication', 'Pump failure: technical complication (catheter, pump, pocket, artery, extrahepatic perfusion)'), ('pump_failure', 'Pump failure: pump or catheter malfunction'), ('treatment_completed', 'End of use: treatment completed'), ('resection', 'End of use: conversion to resection'), ('progression', 'End of use: progression'), ('toxicity', 'End of use: toxicity'), ('patient_choice', 'End of use: patient choice'), ('other', 'End of use: other reason')], max_length=30),
        ),
        migrations.RunPython(split_end_reasons, merge_end_reasons),
        migrations.AddConstraint(
            model_name='complicationtype',
            constraint=models.CheckConstraint(condition=models.Q(('category__in', ['technical', 'toxicity', 'other'])), name='complication_type_category_vocabulary'),
        ),
        migrations.AddConstraint(
            model_name='complicationtype',
            constraint=models.CheckConstraint(condition=models.Q(('catheter_related', False), ('category', 'technical'), _connector='OR'), name='complication_type_catheter_is_technical'),
        ),
        migrations.AddConstraint(
            model_name='followup',
            constraint=models.CheckConstraint(condition=models.Q(('pump_end_reason', ''), ('pump_end_reason__in', ['technical_complication', 'pump_failure', 'treatment_completed', 'resection', 'progression', 'toxicity', 'patient_choice', 'other']), _connector='OR'), name='follow_up_pump_end_reason_vocabulary'),
        ),
    ]
