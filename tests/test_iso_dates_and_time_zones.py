"""Entry that cannot be misread (issue 13): ISO dates, each centre's own today, defaults, labels and the menu."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from registry import rules
from registry.dates import not_iso_message, parse_iso_date
from registry.models import Complication, Implantation, Patient
from registry.vocabulary import ClavienDindo
from sites.models import Role

from . import factories
from .admin_forms import implantation_form, patient_form

AMBIGUOUS = "Write dates as YYYY-MM-DD. 04/03/2026 is 2026-03-04 (4 March) or 2026-04-03 (3 April)."
# 16:30 in London on 4 March is 01:30 on 5 March in Tokyo.
LATE_IN_LONDON = datetime.datetime(2026, 3, 4, 16, 30, tzinfo=datetime.UTC)


@pytest.fixture
def clock(monkeypatch, db):
    def set_to(moment):
        monkeypatch.setattr(rules, "now", lambda: moment)

    set_to(LATE_IN_LONDON)
    return set_to


@pytest.fixture
def entry(client, data_manager_a, centre_a, clock):
    client.force_login(data_manager_a)
    return {"patient": factories.PatientFactory(centre=centre_a), "surgeon": factories.SurgeonFactory(centre=centre_a)}


# --- registry.dates: one message for the admin, the API and the import -----------------------------------


@pytest.mark.parametrize(
    "text,message",
    [
        ("04/03/2026", AMBIGUOUS),
        ("25/03/2026", "Write dates as YYYY-MM-DD. 25/03/2026 is 2026-03-25 (25 March)."),
        ("03/25/2026", "Write dates as YYYY-MM-DD. 03/25/2026 is 2026-03-25 (25 March)."),
        ("4.3.2026", "Write dates as YYYY-MM-DD. 4.3.2026 is 2026-03-04 (4 March) or 2026-04-03 (3 April)."),
        ("2026/03/04", "Write dates as YYYY-MM-DD. 2026/03/04 is 2026-03-04 (4 March)."),
        (
            "2026-02-30",
            "2026-02-30 is not a date in the calendar. Write dates as YYYY-MM-DD, e.g. 2026-03-04 for 4 March 2026.",
        ),
        ("next tuesday", "Write dates as YYYY-MM-DD, e.g. 2026-03-04 for 4 March 2026."),
    ],
)
def test_a_date_not_written_iso_is_refused_with_its_iso_readings(text, message):
    assert not_iso_message(text) == message
    with pytest.raises(ValueError) as refused:
        parse_iso_date(text)
    assert str(refused.value) == message


def test_iso_dates_parse():
    assert parse_iso_date(" 2026-03-04 ") == datetime.date(2026, 3, 4)
    assert parse_iso_date(datetime.date(2026, 3, 4)) == datetime.date(2026, 3, 4)


# --- The admin takes and shows ISO only ----------------------------------------------------------------------


def test_the_admin_refuses_a_day_month_date_with_both_readings(client, entry):
    data = implantation_form(entry["patient"], entry["surgeon"], implanted_on="04/03/2026")
    response = client.post(reverse("admin:registry_implantation_add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["implanted_on"] == [AMBIGUOUS]
    assert not Implantation.objects.exists()


def test_the_admin_accepts_an_iso_date_and_shows_it_back_as_iso(client, entry):
    data = implantation_form(entry["patient"], entry["surgeon"], implanted_on="2026-03-04")
    response = client.post(reverse("admin:registry_implantation_add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    implantation = Implantation.objects.get(patient=entry["patient"])
    assert implantation.implanted_on == datetime.date(2026, 3, 4)
    page = client.get(reverse("admin:registry_implantation_change", args=[implantation.pk])).content.decode()
    assert 'name="implanted_on" value="2026-03-04"' in page
    listing = client.get(reverse("admin:registry_implantation_changelist")).content.decode()
    assert "2026-03-04" in listing and "04/03/2026" not in listing and "4 March 2026" not in listing


def test_inline_dates_are_iso_only_too(client, entry):
    from .admin_forms import inline_rows

    data = implantation_form(entry["patient"], entry["surgeon"], implanted_on="2026-01-10")
    dose = {"given_on": "25/01/2026", "drug": "fudr", "dose": "0.12", "dose_unit": "mg/kg/day", "dose_change": "full"}
    data.update(inline_rows("treatments", [dose]))
    response = client.post(reverse("admin:registry_implantation_add"), data)
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][1].formset.errors
    assert errors[0]["given_on"] == ["Write dates as YYYY-MM-DD. 25/01/2026 is 2026-01-25 (25 January)."]


def test_the_calendar_widget_writes_iso(client, entry):
    """DateTimeShortcuts.js writes get_format('DATE_INPUT_FORMATS')[0], from the admin's JavaScript catalog."""
    catalog = client.get(reverse("admin:jsi18n")).content.decode()
    assert re.search(r'"DATE_INPUT_FORMATS": \[\s*"%Y-%m-%d"\s*\]', catalog)
    assert '"SHORT_DATE_FORMAT": "Y-m-d"' in catalog


def test_the_api_refuses_a_day_month_date_with_the_same_message(entry, data_manager_a):
    api = APIClient()
    api.force_authenticate(data_manager_a)
    payload = {
        "patient": entry["patient"].pk,
        "surgeon": entry["surgeon"].code,
        "implanted_on": "04/03/2026",
        "indication": "adjuvant",
        "approach": "robotic",
        "device": "arterial_port",
    }
    response = api.post("/api/v1/implantations/", payload, format="json")
    assert response.status_code == 400
    assert AMBIGUOUS in response.content.decode()
    payload["implanted_on"] = "2026-03-04"
    assert api.post("/api/v1/implantations/", payload, format="json").status_code == 201


# --- Each centre's own today ---------------------------------------------------------------------------------


def test_today_is_the_centres(clock):
    tokyo = factories.CentreFactory(code="TOKYO", time_zone="Asia/Tokyo")
    london = factories.CentreFactory(code="LONDON", time_zone="Europe/London")
    assert rules.today(tokyo) == datetime.date(2026, 3, 5)
    assert rules.today(london) == datetime.date(2026, 3, 4)
    assert rules.today() == datetime.date(2026, 3, 4)  # no centre: the registry's TIME_ZONE
    assert rules.now() == LATE_IN_LONDON


def test_the_clock_seam_is_django_s_now_by_default():
    before = timezone.now()
    assert before <= rules.now() <= timezone.now()


@pytest.mark.parametrize("zone,accepted", [("Asia/Tokyo", True), ("Europe/London", False)])
def test_a_centre_enters_its_own_today_not_londons(client, clock, zone, accepted):
    centre = factories.CentreFactory(code="ZONED", time_zone=zone)
    client.force_login(factories.user_with_role(Role.DATA_MANAGER, centre, username="dm-zoned"))
    patient = factories.PatientFactory(centre=centre)
    surgeon = factories.SurgeonFactory(centre=centre)
    data = implantation_form(patient, surgeon, implanted_on="2026-03-05")
    response = client.post(reverse("admin:registry_implantation_add"), data)
    if accepted:
        assert response.status_code == 302, response.content.decode()[:3000]
        assert Implantation.objects.get(patient=patient).implanted_on == datetime.date(2026, 3, 5)
    else:
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["implanted_on"] == [
            "The implantation date cannot be in the future."
        ]


def test_records_under_an_implantation_use_the_patients_centre(clock):
    from django.core.exceptions import ValidationError

    tokyo = factories.CentreFactory(code="TOKYO", time_zone="Asia/Tokyo")
    london = factories.CentreFactory(code="LONDON", time_zone="Europe/London")
    for centre, accepted in ((tokyo, True), (london, False)):
        implantation = factories.ImplantationFactory(patient__centre=centre, implanted_on=datetime.date(2026, 3, 1))
        dose = factories.TreatmentFactory.build(implantation=implantation, given_on=datetime.date(2026, 3, 5))
        line = factories.SystemicTherapyLineFactory.build(
            patient=implantation.patient, started_on=datetime.date(2026, 3, 5), ended_on=None
        )
        patient = Patient(centre=centre, birth_year=1960, sex="female", primary_tumour="colorectal")
        patient.consent_on = datetime.date(2026, 3, 5)
        for record, field in ((dose, "given_on"), (line, "started_on"), (patient, "consent_on")):
            if accepted:
                record.full_clean(exclude=["pseudonym"])
            else:
                with pytest.raises(ValidationError) as refused:
                    record.full_clean(exclude=["pseudonym"])
                assert field in refused.value.message_dict, (record, refused.value.message_dict)


# --- Defaults ------------------------------------------------------------------------------------------------


def test_a_one_centre_data_manager_finds_the_centre_chosen(client, data_manager_a, centre_a):
    client.force_login(data_manager_a)
    response = client.get(reverse("admin:registry_patient_add"))
    assert response.context["adminform"].form.initial["centre"] == centre_a.pk
    assert f'<option value="{centre_a.pk}" selected>' in response.content.decode()
    # ... and the form saves with it.
    data = patient_form(centre_a)
    assert client.post(reverse("admin:registry_patient_add"), data).status_code == 302
    # Data managers look after their centre's surgeons: the same there.
    response = client.get(reverse("admin:sites_surgeon_add"))
    assert response.status_code == 200
    assert response.context["adminform"].form.initial["centre"] == centre_a.pk


def test_a_data_manager_of_two_centres_chooses(client, centre_a, centre_b):
    from sites.models import Membership

    dm = factories.user_with_role(Role.DATA_MANAGER, centre_a, username="dm-two")
    Membership.objects.create(user=dm, role=Role.DATA_MANAGER, centre=centre_b)
    client.force_login(dm)
    response = client.get(reverse("admin:registry_patient_add"))
    assert "centre" not in response.context["adminform"].form.initial


def test_the_coordinator_chooses_the_centre(client, coordinator, centre_a):
    client.force_login(coordinator)
    response = client.get(reverse("admin:registry_patient_add"))
    assert "centre" not in response.context["adminform"].form.initial
    response = client.get(reverse("admin:sites_surgeon_add"))
    assert "centre" not in response.context["adminform"].form.initial


def test_related_to_pump_is_not_ticked_on_a_new_complication(client, entry):
    response = client.get(reverse("admin:registry_implantation_add"))
    formset = response.context["inline_admin_formsets"][2].formset
    assert formset.prefix == "complications"
    empty = formset.empty_form
    assert not empty["related_to_pump"].value()
    assert "checked" not in str(empty["related_to_pump"])
    assert Complication._meta.get_field("related_to_pump").default is False


# --- Labels and order ----------------------------------------------------------------------------------------


def test_labels_read_as_a_clinician_writes_them(client, entry):
    assert Complication._meta.get_field("clavien_dindo").verbose_name == "Clavien-Dindo grade"
    assert ClavienDindo.IIIA.label == "Clavien-Dindo grade IIIa"
    assert ClavienDindo.IIIA.value == "IIIa"  # the stored and API value is unchanged
    assert ClavienDindo.V.label == "Clavien-Dindo grade V (death)"
    assert Patient._meta.get_field("ras_status").verbose_name == "RAS status"
    page = client.get(reverse("admin:registry_patient_add")).content.decode()
    assert "RAS status" in page and "Ras status" not in page
    page = client.get(reverse("admin:registry_implantation_add")).content.decode()
    assert "Clavien-Dindo grade IIIa" in page


REGISTRY_MENU = [
    "Patients",
    "Implantations",
    "HAI doses",
    "Complications",
    "Liver tests",
    "Follow-ups",
    "Perfusion checks",
    "Systemic toxicities",
    "Readmissions and reoperations",
    "Systemic therapy lines",
    "Data queries",
]


def test_the_menu_follows_the_order_of_the_work(client, coordinator, data_manager_a):
    client.force_login(coordinator)
    apps = client.get(reverse("admin:index")).context["app_list"]
    assert apps[0]["app_label"] == "registry"
    names = [model["name"] for model in apps[0]["models"]]
    assert names[: len(REGISTRY_MENU)] == REGISTRY_MENU
    assert names.index("Complication types") > names.index("Data queries")
    # The app's own index and the sidebar list the same order.
    app_index = client.get(reverse("admin:app_list", args=["registry"])).context["app_list"]
    assert [model["name"] for model in app_index[0]["models"]][: len(REGISTRY_MENU)] == REGISTRY_MENU
    sidebar = client.get(reverse("admin:registry_patient_changelist")).context["available_apps"]
    assert [model["name"] for model in sidebar[0]["models"]][: len(REGISTRY_MENU)] == REGISTRY_MENU

    client.force_login(data_manager_a)
    names = [model["name"] for model in client.get(reverse("admin:index")).context["app_list"][0]["models"]]
    assert names[:4] == ["Patients", "Implantations", "HAI doses", "Complications"]


def test_the_centre_admin_shows_the_time_zone_and_bilirubin_unit(client, coordinator, centre_a):
    client.force_login(coordinator)
    page = client.get(reverse("admin:sites_centre_changelist")).content.decode()
    assert "Europe/London" in page and "µmol/L" in page
    page = client.get(reverse("admin:sites_centre_change", args=[centre_a.pk])).content.decode()
    assert 'name="time_zone"' in page and 'name="bilirubin_unit"' in page
