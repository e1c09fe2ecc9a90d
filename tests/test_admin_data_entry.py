"""Data entry on the implantation page: inlines, derived values, and nothing half-saved."""

import pytest
from django.urls import reverse

from registry.models import Complication, Implantation, Treatment

from .admin_forms import implantation_form, inline_rows
from .factories import ImplantationFactory, PatientFactory, SurgeonFactory, TreatmentFactory, days_after


@pytest.fixture
def entry(client, data_manager_a, centre_a):
    client.force_login(data_manager_a)
    return {"patient": PatientFactory(centre=centre_a), "surgeon": SurgeonFactory(centre=centre_a, prior_pump_count=24)}


def dose(day="2024-05-20"):
    return {
        "given_on": day,
        "drug": "fudr",
        "dose": "0.12",
        "dose_unit": "mg/kg/day",
        "dose_change": "full",
        "dose_change_reason": "",
    }


def complication(day="2024-06-01", grade="2"):
    from registry.models import ComplicationType

    return {
        "type": str(ComplicationType.objects.get(code="pocket_infection").pk),
        "onset_on": day,
        "grade": grade,
        "clavien_dindo": "",
        "management": "medical",
        "related_to_pump": "on",
    }


def test_implantation_with_doses_and_complication_entered_in_one_place(client, entry):
    data = implantation_form(entry["patient"], entry["surgeon"])
    data.update(inline_rows("treatments", [dose("2024-05-20"), dose("2024-06-03")]))
    data.update(inline_rows("complications", [complication()]))
    response = client.post(reverse("admin:registry_implantation_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    implantation = Implantation.objects.get(patient=entry["patient"])
    assert implantation.treatments.count() == 2 and implantation.complications.count() == 1

    page = client.get(reverse("admin:registry_implantation_change", args=[implantation.pk])).content.decode()
    # Derived values are shown read-only: 18 days to first dose, surgeon's 25th pump.
    assert '<div class="readonly">18</div>' in page
    assert '<div class="readonly">25</div>' in page
    assert 'name="days_to_first_dose' not in page


def test_a_bad_inline_row_saves_nothing_and_names_the_field(client, entry):
    data = implantation_form(entry["patient"], entry["surgeon"])
    data.update(inline_rows("treatments", [dose()]))
    data.update(inline_rows("complications", [complication(day="2024-04-01")]))  # before the implantation
    response = client.post(reverse("admin:registry_implantation_add"), data)
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][2].formset.errors
    assert "precedes the implantation" in errors[0]["onset_on"][0]
    assert not Implantation.objects.exists() and not Treatment.objects.exists() and not Complication.objects.exists()


def test_never_treated_reason_with_doses_in_the_same_form_is_refused(client, entry):
    data = implantation_form(entry["patient"], entry["surgeon"], never_treated_reason="progression")
    data.update(inline_rows("treatments", [dose()]))
    response = client.post(reverse("admin:registry_implantation_add"), data)
    assert "cannot have a never-treated reason" in response.content.decode()
    assert not Implantation.objects.exists()


def test_follow_up_never_used_needs_the_reason_in_the_same_form(client, entry):
    follow_up = {"contact_on": "2024-08-01", "vital_status": "alive", "pump_never_used": "on"}
    data = implantation_form(entry["patient"], entry["surgeon"])
    data.update(inline_rows("follow_ups", [follow_up]))
    response = client.post(reverse("admin:registry_implantation_add"), data)
    errors = response.context["inline_admin_formsets"][4].formset.errors
    assert (
        "never-treated reason" in errors[0]["pump_never_used"][0].lower()
        or "Required" in errors[0]["pump_never_used"][0]
    )
    assert not Implantation.objects.exists()

    data["never_treated_reason"] = "extrahepatic_perfusion"
    assert client.post(reverse("admin:registry_implantation_add"), data).status_code == 302
    assert Implantation.objects.get().follow_ups.get().pump_never_used


def test_removing_the_last_dose_and_setting_the_reason_together(client, entry, centre_a):
    implantation = ImplantationFactory(patient=entry["patient"], surgeon=entry["surgeon"], implanted_on=days_after(0))
    existing = TreatmentFactory(implantation=implantation)
    data = implantation_form(entry["patient"], entry["surgeon"], implanted_on=implantation.implanted_on.isoformat())
    data.update(
        inline_rows(
            "treatments",
            [
                {
                    **dose(existing.given_on.isoformat()),
                    "id": str(existing.pk),
                    "implantation": str(implantation.pk),
                    "DELETE": "on",
                }
            ],
            initial=1,
        )
    )
    data["never_treated_reason"] = "patient_choice"
    response = client.post(reverse("admin:registry_implantation_change", args=[implantation.pk]), data)
    # The model's own check sees the stored dose; the message tells what to do.
    implantation.refresh_from_db()
    assert (implantation.never_treated_reason == "patient_choice") == (not Treatment.objects.exists())
    assert response.status_code in (200, 302)


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"treated": "yes"}, {"treated"}),
        ({"treated": "no"}, {"untreated"}),
        ({"complication_type": "biliary_sclerosis"}, {"untreated"}),
        ({"indication": "adjuvant"}, {"treated"}),
        ({"implanted_on__range__gte": "2024-03-10", "implanted_on__range__lte": "2024-03-31"}, {"untreated"}),
        ({"q": "FIND-ME"}, {"treated"}),
    ],
)
def test_changelist_filters(client, entry, centre_a, params, expected):
    from .factories import ComplicationFactory

    rows = {
        "treated": ImplantationFactory(
            patient=PatientFactory(centre=centre_a, pseudonym="FIND-ME"),
            indication="adjuvant",
            implanted_on=days_after(0),
        ),
        "untreated": ImplantationFactory(patient__centre=centre_a, implanted_on=days_after(20)),
    }
    TreatmentFactory(implantation=rows["treated"])
    ComplicationFactory(implantation=rows["untreated"])
    response = client.get(reverse("admin:registry_implantation_changelist"), params)
    shown = {name for name, row in rows.items() if row in response.context["cl"].result_list}
    assert shown == expected
