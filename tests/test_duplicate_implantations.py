"""One implantation per patient and date: the same case entered twice is refused everywhere (issue 11)."""

import datetime
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from registry.models import DUPLICATE_IMPLANTATION_MESSAGE, Implantation
from registry.services import save_record

from .factories import ImplantationFactory, PatientFactory, SurgeonFactory, another_implantation
from .test_import import good_row, to_csv, upload

DAY = datetime.date(2024, 3, 1)


@pytest.fixture
def first(centre_a):
    patient = PatientFactory(centre=centre_a, pseudonym="PT-000001")
    return ImplantationFactory(
        patient=patient, surgeon=SurgeonFactory(centre=centre_a, code="SURG-01"), implanted_on=DAY
    )


second_of = another_implantation


def test_the_service_refuses_the_same_implantation_twice(first, data_manager_a):
    with pytest.raises(ValidationError) as refused:
        save_record(second_of(first), user=data_manager_a)
    assert DUPLICATE_IMPLANTATION_MESSAGE in refused.value.messages
    assert Implantation.objects.count() == 1
    save_record(second_of(first, implanted_on=DAY + datetime.timedelta(days=1)), user=data_manager_a)  # another day


def test_the_database_refuses_it_when_a_concurrent_write_got_past_validation(first, data_manager_a):
    # As if another request committed the same row between this one's full_clean and its save.
    with mock.patch.object(Implantation, "full_clean"):
        with pytest.raises(ValidationError) as refused:
            save_record(second_of(first), user=data_manager_a)
    assert DUPLICATE_IMPLANTATION_MESSAGE in refused.value.messages
    assert Implantation.objects.count() == 1


def test_the_api_answers_400_with_the_reason(first, data_manager_a):
    client = APIClient()
    client.force_authenticate(data_manager_a)
    body = {
        "patient": first.patient.pk,
        "surgeon": first.surgeon.code,
        "implanted_on": DAY.isoformat(),
        "indication": first.indication,
        "approach": first.approach,
        "device": first.device,
        "catheter_vessel": first.catheter_vessel,
    }
    response = client.post("/api/v1/implantations/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]["non_field_errors"] == [DUPLICATE_IMPLANTATION_MESSAGE]
    assert Implantation.objects.count() == 1


def test_the_import_refuses_a_row_already_in_the_registry_and_a_row_twice_in_the_file(
    client, first, data_manager_a, centre_a
):
    PatientFactory(centre=centre_a, pseudonym="PT-000002")
    client.force_login(data_manager_a)
    response = upload(
        client,
        to_csv(
            [
                good_row("PT-000001"),
                good_row("PT-000002", implanted_on="2024-04-01"),
                good_row("PT-000002", implanted_on="2024-04-01"),
            ]
        ),
    )
    result = response.context["result"]
    assert response.context.get("confirm_form") is None
    invalid = {row.number: row.error_dict for row in result.invalid_rows}
    assert invalid == {
        1: {
            "implanted_on": [
                "Patient PT-000001 already has an implantation on 2024-03-01 (in the registry or earlier in this file)."
            ]
        },
        3: {
            "implanted_on": [
                "Patient PT-000002 already has an implantation on 2024-04-01 (in the registry or earlier in this file)."
            ]
        },
    }
    assert Implantation.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_lists_existing_duplicates_and_stops():
    executor = MigrationExecutor(connection)
    executor.migrate([("registry", "0004_outcome_definitions")])
    apps = executor.loader.project_state([("registry", "0004_outcome_definitions")]).apps
    try:
        Centre, Surgeon = apps.get_model("sites", "Centre"), apps.get_model("sites", "Surgeon")
        Patient, Implantation = apps.get_model("registry", "Patient"), apps.get_model("registry", "Implantation")
        centre = Centre.objects.create(code="DUP", name="Duplicates", country="FR")
        surgeon = Surgeon.objects.create(code="DUP-S", centre=centre)
        patient = Patient.objects.create(
            pseudonym="HAI-DUP0001", centre=centre, birth_year=1960, sex="female", primary_tumour="colorectal"
        )
        rows = [
            Implantation.objects.create(
                patient=patient,
                surgeon=surgeon,
                implanted_on=DAY,
                indication="adjuvant",
                approach="laparotomy",
                device="constant_flow_pump",
            )
            for _ in range(2)
        ]
        executor = MigrationExecutor(connection)
        with pytest.raises(RuntimeError) as stopped:
            executor.migrate([("registry", "0005_one_implantation_per_patient_and_date")])
        message = str(stopped.value)
        assert "centre DUP, patient HAI-DUP0001, 2024-03-01: 2 rows" in message
        assert all(str(row.pk) in message for row in rows)
        rows[1].delete()
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
