"""Migration 0004 maps the old vocabulary onto the outcome definitions' (issue 8)."""

import datetime
import importlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("registry", "0003_entry_timestamps")]
AFTER = [("registry", "0004_outcome_definitions")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


# Transactional (migrations run outside the test's transaction): pytest-django runs it after the
# ordinary tests, and the tables are emptied afterwards, as for the worker tests.
@pytest.mark.django_db(transaction=True)
def test_complication_categories_and_split_end_reasons():
    apps = migrate(BEFORE)
    try:
        Centre = apps.get_model("sites", "Centre")
        Surgeon = apps.get_model("sites", "Surgeon")
        Patient = apps.get_model("registry", "Patient")
        Implantation = apps.get_model("registry", "Implantation")
        ComplicationType = apps.get_model("registry", "ComplicationType")
        Complication = apps.get_model("registry", "Complication")
        FollowUp = apps.get_model("registry", "FollowUp")
        # An earlier transactional test may have emptied the tables: the vocabulary as migration 0002 made it.
        importlib.import_module("registry.migrations.0002_complication_types").add_types(apps, None)
        added = ComplicationType.objects.create(
            code="port_leak", name="Port leak", grading_system="clavien_dindo", catheter_related=True
        )
        centre = Centre.objects.create(code="M1", name="Migration centre", country="FR")
        surgeon = Surgeon.objects.create(code="MS1", centre=centre)
        day = datetime.date(2024, 1, 1)

        def follow_up(reason, complication_code=None):
            patient = Patient.objects.create(
                pseudonym=f"HAI-M{Patient.objects.count():07d}",
                centre=centre,
                birth_year=1960,
                sex="female",
                primary_tumour="colorectal",
            )
            implantation = Implantation.objects.create(
                patient=patient,
                surgeon=surgeon,
                implanted_on=day,
                indication="adjuvant",
                approach="laparotomy",
                device="constant_flow_pump",
            )
            if complication_code:
                Complication.objects.create(
                    implantation=implantation,
                    onset_on=day + datetime.timedelta(days=40),
                    type=ComplicationType.objects.get(code=complication_code),
                    grade=3,
                )
            return FollowUp.objects.create(
                implantation=implantation,
                contact_on=day + datetime.timedelta(days=90),
                vital_status="alive",
                pump_ended_on=day + datetime.timedelta(days=60),
                pump_end_reason=reason,
            )

        after_toxicity = follow_up("complication", "biliary_sclerosis")
        after_technical = follow_up("complication", "pocket_infection")
        unexplained = follow_up("complication")
        failure = follow_up("pump_failure")
        completed = follow_up("treatment_completed")

        apps = migrate(AFTER)
        ComplicationType = apps.get_model("registry", "ComplicationType")
        FollowUp = apps.get_model("registry", "FollowUp")
        categories = dict(ComplicationType.objects.values_list("code", "category"))
        assert categories["biliary_sclerosis"] == categories["gastroduodenal_ulcer"] == "toxicity"
        assert categories["pocket_infection"] == categories["catheter_occlusion"] == "technical"
        assert categories["other"] == "other"
        assert categories[added.code] == "technical"  # a catheter-related type the coordinator added
        reasons = dict(FollowUp.objects.values_list("pk", "pump_end_reason"))
        assert reasons[after_toxicity.pk] == "toxicity"
        assert reasons[after_technical.pk] == "technical_complication"
        assert reasons[unexplained.pk] == "technical_complication"
        assert reasons[failure.pk] == "pump_failure"
        assert reasons[completed.pk] == "treatment_completed"
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
