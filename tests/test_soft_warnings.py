"""Soft warnings (issue 12): an implausible but possible value is saved once the user confirms it, and the
confirmation is kept. The same through the service, the API, the admin (main form and inline rows) and the
import; hard rules stay hard."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from tablib import Dataset

from registry import soft_warnings
from registry.imports import CONFIRM_WARNINGS_LABEL, ImplantationResource
from registry.models import Implantation, SoftWarningConfirmation, Treatment
from registry.services import UnconfirmedWarnings, save_record
from sites.models import Role

from . import factories
from .admin_forms import inline_rows, record_form
from .api_world import write
from .clients import client_for
from .test_import import confirm, good_row, run_import, to_csv, upload

FUDR = "fudr_dose_outside_usual"
SAME_DAY = "first_dose_on_implantation_day"
LONG_OPERATION = "operative_time_long"


def codes(warnings):
    return [w.code for w in warnings]


def confirmations(record):
    return SoftWarningConfirmation.objects.filter(record_model=record._meta.label_lower, record_id=record.pk)


@pytest.fixture
def implantation(centre_a):
    return factories.ImplantationFactory(patient__centre=centre_a, operative_minutes=240)


# --- The catalogue: each warning fires beyond its threshold, and not at it ---------------------------------


@pytest.mark.parametrize(
    "dose,unit,drug,fires",
    [
        ("0.100", "mg/kg/day", "fudr", False),  # the usual range's ends are usual
        ("0.300", "mg/kg/day", "fudr", False),
        ("0.120", "mg/kg/day", "fudr", False),
        ("0.099", "mg/kg/day", "fudr", True),
        ("0.301", "mg/kg/day", "fudr", True),
        ("0.500", "mg/kg/day", "fudr", True),
        ("0.500", "mg/kg/day", "other", False),  # FUDR's range only
        ("100", "mg/m2", "oxaliplatin", False),
    ],
)
def test_fudr_dose_outside_the_usual_range(implantation, dose, unit, drug, fires):
    treatment = factories.TreatmentFactory.build(
        implantation=implantation, drug=drug, dose=Decimal(dose), dose_unit=unit
    )
    found = soft_warnings.warnings_for(treatment)
    assert (FUDR in codes(found)) is fires
    if fires:
        (warning,) = found
        assert warning.field == "dose"
        assert f"{Decimal(dose).normalize():f} mg/kg/day" in warning.message and "0.1–0.3" in warning.message


@pytest.mark.parametrize("days,change,fires", [(0, "full", True), (1, "full", False), (0, "held", False)])
def test_first_dose_on_the_implantation_day(implantation, days, change, fires):
    treatment = factories.TreatmentFactory.build(
        implantation=implantation,
        given_on=implantation.implanted_on + datetime.timedelta(days=days),
        dose_change=change,
        hold_reason="" if change == "full" else "bilirubin",
    )
    found = soft_warnings.warnings_for(treatment)
    assert codes(found) == ([SAME_DAY] if fires else [])
    if fires:
        assert found[0].field == "given_on" and implantation.implanted_on.isoformat() in found[0].message


@pytest.mark.parametrize(
    "field,code,limit",
    [
        ("operative_minutes", LONG_OPERATION, soft_warnings.LONG_OPERATIVE_MINUTES),
        ("length_of_stay_days", "length_of_stay_long", soft_warnings.LONG_STAY_DAYS),
        ("blood_loss_ml", "blood_loss_high", soft_warnings.HIGH_BLOOD_LOSS_ML),
    ],
)
def test_operative_warnings_fire_above_their_threshold_only(implantation, field, code, limit):
    setattr(implantation, field, limit)
    assert soft_warnings.warnings_for(implantation) == []
    setattr(implantation, field, limit + 1)
    (warning,) = soft_warnings.warnings_for(implantation)
    assert (warning.code, warning.field) == (code, field)
    assert f"{limit + 1:,}" in warning.message


def test_the_thresholds_are_the_issues():
    assert (soft_warnings.FUDR_USUAL_LOW, soft_warnings.FUDR_USUAL_HIGH) == (Decimal("0.1"), Decimal("0.3"))
    assert soft_warnings.CODES == {
        FUDR,
        SAME_DAY,
        LONG_OPERATION,
        "length_of_stay_long",
        "blood_loss_high",
        "dose_differs_from_computed",
    }


# --- The service ------------------------------------------------------------------------------------------


def test_save_record_refuses_an_unconfirmed_warning_and_writes_nothing(implantation, data_manager_a):
    treatment = factories.TreatmentFactory.build(implantation=implantation, dose=Decimal("0.5"))

    with pytest.raises(UnconfirmedWarnings) as caught:
        save_record(treatment, user=data_manager_a, confirmed_warnings=["blood_loss_high"])  # not this one

    assert isinstance(caught.value, ValidationError)
    assert codes(caught.value.warnings) == [FUDR]
    assert list(caught.value.message_dict) == ["dose"]
    assert "0.5 mg/kg/day" in caught.value.message_dict["dose"][0]
    assert not Treatment.objects.exists() and not SoftWarningConfirmation.objects.exists()


def test_save_record_saves_a_confirmed_warning_and_keeps_the_confirmation(implantation, data_manager_a, centre_a):
    treatment = factories.TreatmentFactory.build(
        implantation=implantation, dose=Decimal("0.5"), given_on=implantation.implanted_on
    )

    save_record(treatment, user=data_manager_a, confirmed_warnings=[FUDR, SAME_DAY, "not_a_warning"])

    rows = confirmations(treatment).order_by("code")
    assert [(r.code, r.confirmed_by, r.confirmed_by_name, r.centre) for r in rows] == [
        (SAME_DAY, data_manager_a, "dm-a", centre_a),
        (FUDR, data_manager_a, "dm-a", centre_a),
    ]
    assert "0.5 mg/kg/day" in rows[1].message
    assert treatment.history.get().history_user == data_manager_a


def test_a_confirmed_value_is_not_asked_again_but_a_new_value_is(implantation, data_manager_a):
    treatment = factories.TreatmentFactory.build(implantation=implantation, dose=Decimal("0.5"))
    save_record(treatment, user=data_manager_a, confirmed_warnings=[FUDR])

    treatment.dose_change, treatment.hold_reason = "reduced", "bilirubin"
    save_record(treatment, user=data_manager_a)  # an unrelated edit: the 0.5 was vouched for
    assert confirmations(treatment).count() == 1

    treatment.dose = Decimal("0.55")
    with pytest.raises(UnconfirmedWarnings):
        save_record(treatment, user=data_manager_a)
    save_record(treatment, user=data_manager_a, confirmed_warnings=[FUDR])
    assert confirmations(treatment).count() == 2


def test_a_hard_rule_cannot_be_confirmed(implantation, data_manager_a):
    treatment = factories.TreatmentFactory.build(implantation=implantation, dose=Decimal("0.7"))  # above 0.6

    with pytest.raises(ValidationError) as caught:
        save_record(treatment, user=data_manager_a, confirmed_warnings=list(soft_warnings.CODES))

    assert not isinstance(caught.value, UnconfirmedWarnings)
    assert "plausible range" in caught.value.message_dict["dose"][0]
    assert not Treatment.objects.exists() and not SoftWarningConfirmation.objects.exists()


def test_confirmations_belong_to_the_records_centre(implantation, data_manager_a, centre_b):
    save_record(
        factories.TreatmentFactory.build(implantation=implantation, dose=Decimal("0.5")),
        user=data_manager_a,
        confirmed_warnings=[FUDR],
    )
    other_dm = factories.user_with_role(Role.DATA_MANAGER, centre_b, username="dm-b")

    assert SoftWarningConfirmation.objects.visible_to(data_manager_a).count() == 1
    assert not SoftWarningConfirmation.objects.visible_to(other_dm).exists()


# --- The API ------------------------------------------------------------------------------------------------


def dose_payload(implantation, dose):
    return {
        "implantation": implantation.pk,
        "given_on": (implantation.implanted_on + datetime.timedelta(days=14)).isoformat(),
        "drug": "fudr",
        "dose": dose,
        "dose_unit": "mg/kg/day",
    }


def test_api_answers_the_warnings_in_the_error_shape_and_saves_them_confirmed(implantation, data_manager_a):
    api = client_for(data_manager_a)

    refused = write(api, "post", "/api/v1/treatments/", dose_payload(implantation, "0.500"))

    assert refused.status_code == 400
    body = refused.json()
    assert set(body) == {"detail", "errors", "warnings"}
    assert body["detail"] == "Invalid input."
    assert "0.5 mg/kg/day" in body["errors"]["dose"][0]
    (warning,) = body["warnings"]
    assert set(warning) == {"code", "field", "message"}
    assert (warning["code"], warning["field"]) == (FUDR, "dose")
    assert not Treatment.objects.exists()

    saved = write(
        api, "post", "/api/v1/treatments/", {**dose_payload(implantation, "0.500"), "confirmed_warnings": [FUDR]}
    )

    assert saved.status_code == 201, saved.json()
    assert "confirmed_warnings" not in saved.json()  # write-only
    treatment = Treatment.objects.get()
    assert treatment.dose == Decimal("0.500")
    (confirmation,) = confirmations(treatment)
    assert (confirmation.code, confirmation.confirmed_by) == (FUDR, data_manager_a)
    assert confirmation.message == warning["message"]


def test_api_update_asks_for_confirmation_too(implantation, data_manager_a):
    treatment = factories.TreatmentFactory(implantation=implantation)
    api = client_for(data_manager_a)
    url = f"/api/v1/treatments/{treatment.pk}/"

    refused = write(api, "patch", url, {"dose": "0.050"})
    assert refused.status_code == 400 and [w["code"] for w in refused.json()["warnings"]] == [FUDR]
    treatment.refresh_from_db()
    assert treatment.dose == Decimal("0.120")

    saved = write(api, "patch", url, {"dose": "0.050", "confirmed_warnings": [FUDR]})
    assert saved.status_code == 200, saved.json()
    treatment.refresh_from_db()
    assert treatment.dose == Decimal("0.050") and confirmations(treatment).count() == 1
    # A later, unrelated change: the dose read back as 0.050 is the value confirmed as 0.050 (or 0.05).
    again = write(api, "patch", url, {"dose_change": "reduced", "hold_reason": "bilirubin"})
    assert again.status_code == 200, again.json()
    assert confirmations(treatment).count() == 1


def test_api_hard_error_has_no_warnings_and_cannot_be_confirmed(implantation, data_manager_a):
    response = write(
        client_for(data_manager_a),
        "post",
        "/api/v1/treatments/",
        {**dose_payload(implantation, "0.700"), "confirmed_warnings": [FUDR]},
    )

    assert response.status_code == 400
    assert "warnings" not in response.json()
    assert "plausible range" in response.json()["errors"]["dose"][0]
    assert not Treatment.objects.exists()


# --- The admin: the implantation's own form, and its inline dose rows --------------------------------------


def change_url(record):
    return f"/admin/registry/{record._meta.model_name}/{record.pk}/change/"


def test_admin_main_form_asks_then_saves_the_confirmed_value(client, implantation, data_manager_a):
    client.force_login(data_manager_a)

    asked = client.post(change_url(implantation), record_form(implantation, operative_minutes="700"))

    assert asked.status_code == 200
    form = asked.context["adminform"].form
    assert "operative_minutes" in form.errors
    page = asked.content.decode()
    assert f'name="confirmed_warnings" value="{LONG_OPERATION}"' in page
    assert "I confirm this value is correct" in page and "700 min" in page
    implantation.refresh_from_db()
    assert implantation.operative_minutes == 240

    saved = client.post(
        change_url(implantation),
        record_form(implantation, operative_minutes="700", confirmed_warnings=LONG_OPERATION),
    )

    assert saved.status_code == 302
    implantation.refresh_from_db()
    assert implantation.operative_minutes == 700
    (confirmation,) = confirmations(implantation)
    assert (confirmation.code, confirmation.confirmed_by) == (LONG_OPERATION, data_manager_a)
    # Saved again with another change: the 700 was vouched for, not asked again.
    again = client.post(change_url(implantation), record_form(implantation, length_of_stay_days="6"))
    assert again.status_code == 302 and confirmations(implantation).count() == 1


def test_admin_hard_error_shows_no_confirmation_box(client, implantation, data_manager_a):
    client.force_login(data_manager_a)

    response = client.post(
        change_url(implantation),
        record_form(implantation, operative_minutes="2000", confirmed_warnings=LONG_OPERATION),
    )

    assert response.status_code == 200
    assert "less than or equal to 1440" in str(response.context["adminform"].form.errors["operative_minutes"])
    assert 'name="confirmed_warnings"' not in response.content.decode()
    implantation.refresh_from_db()
    assert implantation.operative_minutes == 240 and not SoftWarningConfirmation.objects.exists()


def dose_row(implantation, dose, **extra):
    return {
        "id": "",
        "implantation": str(implantation.pk),
        "given_on": (implantation.implanted_on + datetime.timedelta(days=14)).isoformat(),
        "drug": "fudr",
        "dose": dose,
        "dose_unit": "mg/kg/day",
        "dose_change": "full",
        "dose_change_reason": "",
        **extra,
    }


def test_admin_inline_dose_asks_then_saves_the_confirmed_value(client, implantation, data_manager_a):
    client.force_login(data_manager_a)

    asked = client.post(
        change_url(implantation),
        {**record_form(implantation), **inline_rows("treatments", [dose_row(implantation, "0.5")])},
    )

    assert asked.status_code == 200
    page = asked.content.decode()
    assert f'name="treatments-0-confirmed_warnings" value="{FUDR}"' in page
    assert "0.5 mg/kg/day" in page
    assert not Treatment.objects.exists()

    saved = client.post(
        change_url(implantation),
        {
            **record_form(implantation),
            **inline_rows("treatments", [dose_row(implantation, "0.5", confirmed_warnings=FUDR)]),
        },
    )

    assert saved.status_code == 302
    treatment = Treatment.objects.get()
    assert treatment.dose == Decimal("0.5")
    (confirmation,) = confirmations(treatment)
    assert (confirmation.code, confirmation.confirmed_by, confirmation.confirmed_by_name) == (
        FUDR,
        data_manager_a,
        "dm-a",
    )


def test_admin_pages_render_with_the_warning_forms(client, implantation, data_manager_a):
    factories.TreatmentFactory(implantation=implantation, dose=Decimal("0.5"))  # an unconfirmed legacy value
    client.force_login(data_manager_a)

    for url in (change_url(implantation), "/admin/registry/implantation/add/", "/admin/registry/treatment/add/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert 'name="confirmed_warnings"' not in response.content.decode()  # nothing asked before a save
    # The unchanged legacy row is not saved by the formset, so it is not asked about.
    treatment = implantation.treatments.get()
    data = {
        **record_form(implantation),
        **inline_rows(
            "treatments",
            [{**dose_row(implantation, "0.500"), "id": str(treatment.pk), "given_on": treatment.given_on.isoformat()}],
            initial=1,
        ),
    }
    data["treatments-0-opened_version"] = str(treatment.version)
    assert client.post(change_url(implantation), data).status_code == 302


# --- The import ---------------------------------------------------------------------------------------------


@pytest.fixture
def import_world(centre_a):
    factories.SurgeonFactory(centre=centre_a, code="SURG-01")
    return [factories.PatientFactory(centre=centre_a, pseudonym=f"PT-00000{i}") for i in (1, 2)]


def test_import_refuses_unconfirmed_warnings_and_saves_confirmed_ones(data_manager_a, import_world):
    rows = [good_row("PT-000001"), good_row("PT-000002", operative_minutes="700")]

    refused = run_import(data_manager_a, rows)

    assert refused.has_validation_errors()
    (invalid,) = refused.invalid_rows
    assert invalid.number == 2 and "700 min" in invalid.error_dict["operative_minutes"][0]
    assert not Implantation.objects.exists() and not SoftWarningConfirmation.objects.exists()

    dataset = Dataset().load(to_csv(rows), format="csv")
    done = ImplantationResource(user=data_manager_a, confirm_warnings=True).import_data(dataset)

    assert not done.has_validation_errors() and not done.has_errors()
    imported = Implantation.objects.get(patient__pseudonym="PT-000002")
    (confirmation,) = confirmations(imported)
    assert (confirmation.code, confirmation.confirmed_by) == (LONG_OPERATION, data_manager_a)


def test_import_hard_errors_stay_errors_even_confirmed(data_manager_a, import_world):
    dataset = Dataset().load(to_csv([good_row("PT-000001", operative_minutes="2000")]), format="csv")
    result = ImplantationResource(user=data_manager_a, confirm_warnings=True).import_data(dataset)

    assert result.has_validation_errors() and not Implantation.objects.exists()


def test_admin_import_has_a_confirm_warnings_step(client, data_manager_a, import_world):
    client.force_login(data_manager_a)
    text = to_csv([good_row("PT-000001"), good_row("PT-000002", blood_loss_ml="3500")])

    preview = upload(client, text)

    assert preview.status_code == 200 and preview.context["confirm_form"] is not None
    page = preview.content.decode()
    assert 'data-code="blood_loss_high"' in page and "3,500 mL" in page
    assert CONFIRM_WARNINGS_LABEL in page and 'name="confirm_warnings"' in page
    assert [(number, codes(found)) for number, found in preview.context["result"].soft_warnings] == [
        (2, ["blood_loss_high"])
    ]

    # Confirmed without the box: refused, with a message saying why.
    refused = confirm(client, preview)
    assert refused.status_code == 302 and not Implantation.objects.exists()
    shown = [str(m) for m in client.get("/admin/registry/implantation/").context["messages"]]
    assert any("soft warnings" in m and "row(s) 2" in m and CONFIRM_WARNINGS_LABEL in m for m in shown), shown

    # Uploaded again and confirmed with the box: imported, the confirmation kept with the importing user.
    preview = upload(client, text)
    done = client.post(
        "/admin/registry/implantation/process_import/",
        {**preview.context["confirm_form"].initial, "confirm_warnings": "on"},
    )
    assert done.status_code == 302
    assert Implantation.objects.count() == 2
    imported = Implantation.objects.get(patient__pseudonym="PT-000002")
    assert imported.blood_loss_ml == 3500
    (confirmation,) = confirmations(imported)
    assert (confirmation.code, confirmation.confirmed_by) == ("blood_loss_high", data_manager_a)


def test_admin_import_without_warnings_shows_no_box(client, data_manager_a, import_world):
    client.force_login(data_manager_a)

    preview = upload(client, to_csv([good_row("PT-000001")]))

    assert preview.context["confirm_form"] is not None
    assert 'name="confirm_warnings"' not in preview.content.decode()
