"""Units of the liver tests (issue 13): bilirubin entered and shown in the centre's unit, stored in µmol/L; ALT
and the laboratories' upper limits of normal; unit labels never upper-cased.

1 mg/dL = 17.1 µmol/L (registry.units); the admin's form is registry.admin_units.
"""

import re
from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from registry.admin_units import LiverTestForm, LiverTestInlineForm
from registry.models import LiverTest
from registry.units import bilirubin_from_micromol, bilirubin_to_micromol
from sites.models import BilirubinUnit

from . import factories
from .admin_forms import inline_rows, record_form
from .factories import days_after

MG = BilirubinUnit.MG_PER_DL
UMOL = BilirubinUnit.MICROMOL_PER_L


# --------------------------------------------------------------------------- conversion


@pytest.mark.parametrize(
    "entered,unit,stored",
    [
        ("1.2", MG, "20.5"),  # 20.52
        ("1.20", MG, "20.5"),
        ("0.3", MG, "5.1"),
        ("58.48", MG, "1000.0"),
        ("20.5", UMOL, "20.5"),
        ("0", MG, "0.0"),
    ],
)
def test_entered_bilirubin_is_stored_in_micromol_with_one_decimal(entered, unit, stored):
    assert bilirubin_to_micromol(Decimal(entered), unit) == Decimal(stored)


@pytest.mark.parametrize("stored,unit,shown", [("20.5", MG, "1.20"), ("12.0", MG, "0.70"), ("20.5", UMOL, "20.5")])
def test_stored_bilirubin_is_shown_in_the_unit(stored, unit, shown):
    assert str(bilirubin_from_micromol(Decimal(stored), unit)) == shown


def test_an_unknown_unit_is_refused():
    with pytest.raises(ValueError):
        bilirubin_to_micromol(Decimal("1"), "mmol/L")


# --------------------------------------------------------------------------- the admin


@pytest.fixture
def mg_centre(centre_a):
    centre_a.bilirubin_unit = MG
    centre_a.save()
    return centre_a


def implantation_page(implantation):
    return reverse("admin:registry_implantation_change", args=[implantation.pk])


def liver_row(implantation, test=None, **values):
    """One liver-test row of the implantation page (an existing ``test``'s row, or a new one)."""
    row = {
        "implantation": str(implantation.pk),
        "measured_on": days_after(30, implantation.implanted_on).isoformat(),
        "ast_u_per_l": "",
        "alt_u_per_l": "",
        "alp_u_per_l": "",
        "bilirubin_umol_per_l": "",
    }
    if test is not None:
        row.update(id=str(test.pk), opened_version=str(test.version))
    row.update(values)
    return row


def post_liver_rows(client, implantation, rows, initial=0):
    data = record_form(implantation)
    data.update(inline_rows("liver_tests", rows, initial=initial))
    return client.post(implantation_page(implantation), data)


def row_errors(response):
    formset = next(f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "liver_tests")
    return formset.formset.errors


def test_a_mg_per_dl_centre_enters_mg_per_dl_and_the_registry_stores_micromol(client, mg_centre, data_manager_a):
    client.force_login(data_manager_a)
    implantation = factories.ImplantationFactory(patient__centre=mg_centre)

    # The row's column says the centre's unit; a new row's unit select starts at it.
    page = client.get(implantation_page(implantation)).content.decode()
    assert "Total bilirubin (mg/dL)" in page
    assert "Bilirubin ULN (mg/dL)" in page
    assert re.search(r'<option value="mg/dL" selected>mg/dL</option>', page)

    response = post_liver_rows(
        client,
        implantation,
        [liver_row(implantation, bilirubin_umol_per_l="1.2", bilirubin_upper_limit_umol_per_l="1.0")],
    )
    assert response.status_code == 302, row_errors(response)
    test = LiverTest.objects.get(implantation=implantation)
    assert test.bilirubin_umol_per_l == Decimal("20.5")
    assert test.bilirubin_upper_limit_umol_per_l == Decimal("17.1")

    # ... and back: shown in mg/dL.
    page = client.get(implantation_page(implantation)).content.decode()
    assert 'name="liver_tests-0-bilirubin_umol_per_l" value="1.20"' in page
    assert 'name="liver_tests-0-bilirubin_upper_limit_umol_per_l" value="1.00"' in page


def test_a_micromol_centre_is_unchanged(client, centre_a, data_manager_a):
    client.force_login(data_manager_a)
    implantation = factories.ImplantationFactory(patient__centre=centre_a)
    page = client.get(implantation_page(implantation)).content.decode()
    assert "Total bilirubin (µmol/L)" in page

    response = post_liver_rows(client, implantation, [liver_row(implantation, bilirubin_umol_per_l="20.5")])
    assert response.status_code == 302, row_errors(response)
    assert LiverTest.objects.get().bilirubin_umol_per_l == Decimal("20.5")
    page = client.get(implantation_page(implantation)).content.decode()
    assert 'name="liver_tests-0-bilirubin_umol_per_l" value="20.5"' in page

    # Still one decimal in µmol/L, as before.
    test = LiverTest.objects.get()
    response = post_liver_rows(
        client, implantation, [liver_row(implantation, test, bilirubin_umol_per_l="20.55")], initial=1
    )
    assert response.status_code == 200
    assert "at most 1 decimal places" in str(row_errors(response))


def test_the_unit_may_be_chosen_per_row(client, mg_centre, data_manager_a):
    client.force_login(data_manager_a)
    implantation = factories.ImplantationFactory(patient__centre=mg_centre)
    row = liver_row(implantation, bilirubin_umol_per_l="20.5", bilirubin_entry_unit=UMOL)
    response = post_liver_rows(client, implantation, [row])
    assert response.status_code == 302, row_errors(response)
    assert LiverTest.objects.get().bilirubin_umol_per_l == Decimal("20.5")


def test_the_range_is_checked_on_the_stored_value_in_the_centres_unit(client, mg_centre, data_manager_a):
    client.force_login(data_manager_a)
    implantation = factories.ImplantationFactory(patient__centre=mg_centre)
    response = post_liver_rows(client, implantation, [liver_row(implantation, bilirubin_umol_per_l="60")])
    assert response.status_code == 200
    (errors,) = row_errors(response)
    (message,) = errors["bilirubin_umol_per_l"]
    assert "58.48 mg/dL" in message and "1000 µmol/L" in message
    # 58.48 mg/dL is 1000.0 µmol/L: in range.
    response = post_liver_rows(client, implantation, [liver_row(implantation, bilirubin_umol_per_l="58.48")])
    assert response.status_code == 302, row_errors(response)
    assert LiverTest.objects.get().bilirubin_umol_per_l == Decimal("1000.0")


def test_the_range_message_of_a_micromol_centre(client, centre_a, data_manager_a):
    client.force_login(data_manager_a)
    implantation = factories.ImplantationFactory(patient__centre=centre_a)
    response = post_liver_rows(client, implantation, [liver_row(implantation, bilirubin_umol_per_l="1000.1")])
    (errors,) = row_errors(response)
    assert errors["bilirubin_umol_per_l"] == ["Total bilirubin must be between 0 and 1000 µmol/L."]
    assert not LiverTest.objects.exists()


def test_a_value_left_as_shown_keeps_its_stored_value(client, mg_centre, data_manager_a):
    """20.6 µmol/L shows as 1.20 mg/dL, which is 20.5: saving the row for another change keeps 20.6."""
    client.force_login(data_manager_a)
    implantation = factories.ImplantationFactory(patient__centre=mg_centre)
    test = factories.LiverTestFactory(implantation=implantation, bilirubin_umol_per_l=Decimal("20.6"))
    row = liver_row(
        implantation, test, ast_u_per_l="50", alt_u_per_l="30", alp_u_per_l="110", bilirubin_umol_per_l="1.20"
    )
    response = post_liver_rows(client, implantation, [row], initial=1)
    assert response.status_code == 302, row_errors(response)
    test.refresh_from_db()
    assert (test.ast_u_per_l, test.bilirubin_umol_per_l) == (50, Decimal("20.6"))

    # Changed, it is converted.
    test.refresh_from_db()
    row = liver_row(
        implantation, test, ast_u_per_l="50", alt_u_per_l="30", alp_u_per_l="110", bilirubin_umol_per_l="1.3"
    )
    assert post_liver_rows(client, implantation, [row], initial=1).status_code == 302
    test.refresh_from_db()
    assert test.bilirubin_umol_per_l == Decimal("22.2")


def test_the_liver_test_page_and_list_use_the_centres_unit(client, mg_centre, data_manager_a):
    client.force_login(data_manager_a)
    implantation = factories.ImplantationFactory(patient__centre=mg_centre)
    test = factories.LiverTestFactory(implantation=implantation, bilirubin_umol_per_l=Decimal("20.5"))
    url = reverse("admin:registry_livertest_change", args=[test.pk])

    page = client.get(url).content.decode()
    assert "Total bilirubin (mg/dL)" in page
    assert 'name="bilirubin_umol_per_l" value="1.20"' in page

    data = record_form(test, bilirubin_umol_per_l="2.5", bilirubin_entry_unit=MG)
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    test.refresh_from_db()
    assert test.bilirubin_umol_per_l == Decimal("42.8")  # 42.75

    listing = client.get(reverse("admin:registry_livertest_changelist")).content.decode()
    assert "2.50 mg/dL" in listing


def test_a_new_liver_test_starts_at_the_users_centres_unit(client, mg_centre, data_manager_a, coordinator):
    client.force_login(data_manager_a)
    page = client.get(reverse("admin:registry_livertest_add")).content.decode()
    assert "Total bilirubin (mg/dL)" in page
    client.force_login(coordinator)  # every centre: the registry's unit
    page = client.get(reverse("admin:registry_livertest_add")).content.decode()
    assert "Total bilirubin (µmol/L)" in page


def test_the_forms_compose_with_the_soft_warnings_and_the_version_check(client, mg_centre, data_manager_a):
    from registry.admin_warnings import SoftWarningForm, SoftWarningInlineForm
    from sites.admin_mixins import VersionCheckedForm

    assert issubclass(LiverTestForm, SoftWarningForm) and issubclass(LiverTestInlineForm, SoftWarningInlineForm)
    client.force_login(data_manager_a)
    implantation = factories.ImplantationFactory(patient__centre=mg_centre)
    response = client.get(implantation_page(implantation))
    formset = next(f for f in response.context["inline_admin_formsets"] if f.formset.prefix == "liver_tests")
    form = formset.formset.empty_form
    assert isinstance(form, (VersionCheckedForm, LiverTestInlineForm))
    assert isinstance(form, VersionCheckedForm) and isinstance(form, LiverTestInlineForm)
    assert form.soft_warning_user == data_manager_a

    # A stale save names the values in the centre's unit.
    test = factories.LiverTestFactory(implantation=implantation, bilirubin_umol_per_l=Decimal("20.5"))
    opened = test.version
    test.bilirubin_umol_per_l = Decimal("34.2")
    test.save()
    url = reverse("admin:registry_livertest_change", args=[test.pk])
    data = record_form(test, bilirubin_umol_per_l="2.5", opened_version=str(opened))
    response = client.post(url, data)
    assert response.status_code == 200
    (message,) = response.context["adminform"].form.non_field_errors()
    assert "Total bilirubin (mg/dL): now 2.00 (yours: 2.5)" in message


# --------------------------------------------------------------------------- labels keep their case


def test_admin_pages_keep_the_case_of_their_labels(client, mg_centre, data_manager_a):
    client.force_login(data_manager_a)
    implantation = factories.ImplantationFactory(patient__centre=mg_centre)
    for url in (
        implantation_page(implantation),
        reverse("admin:index"),
        reverse("admin:registry_livertest_changelist"),
    ):
        response = client.get(url)
        assert "admin/base_site.html" in [t.name for t in response.templates]
        style = re.search(r'<style id="registry-label-case">(.*?)</style>', response.content.decode(), re.S)
        assert style, url
        assert "thead th" in style.group(1) and ".inline-group h2" in style.group(1)
        assert "text-transform: none" in style.group(1)


# --------------------------------------------------------------------------- the API


def api_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_alt_and_the_upper_limits_go_through_the_api(centre_a, data_manager_a, investigator):
    implantation = factories.ImplantationFactory(patient__centre=centre_a)
    payload = {
        "implantation": implantation.pk,
        "measured_on": days_after(30, implantation.implanted_on).isoformat(),
        "ast_u_per_l": 40,
        "alt_u_per_l": 55,
        "bilirubin_umol_per_l": "20.5",
        "ast_upper_limit": 35,
        "alt_upper_limit": 45,
        "alp_upper_limit": 130,
        "bilirubin_upper_limit_umol_per_l": "21.0",
    }
    response = api_for(data_manager_a).post("/api/v1/liver-tests/", payload, format="json")
    assert response.status_code == 201, response.json()
    test = LiverTest.objects.get()
    assert (test.alt_u_per_l, test.ast_upper_limit, test.alt_upper_limit, test.alp_upper_limit) == (55, 35, 45, 130)
    assert test.bilirubin_upper_limit_umol_per_l == Decimal("21.0")

    read = api_for(data_manager_a).get(f"/api/v1/liver-tests/{test.pk}/")
    row = read.json()
    assert row["alt_u_per_l"] == 55 and row["bilirubin_umol_per_l"] == "20.5"
    assert row["bilirubin_upper_limit_umol_per_l"] == "21.0"

    response = api_for(data_manager_a).patch(
        f"/api/v1/liver-tests/{test.pk}/", {"alt_upper_limit": 50}, format="json", HTTP_IF_MATCH=read["ETag"]
    )
    assert response.status_code == 200, response.json()
    test.refresh_from_db()
    assert test.alt_upper_limit == 50

    (seen,) = api_for(investigator).get("/api/v1/liver-tests/").json()["results"]
    assert {seen[name] for name in ("alt_u_per_l", "ast_upper_limit", "alt_upper_limit", "alp_upper_limit")} == {
        55,
        35,
        50,
        130,
    }
    assert seen["bilirubin_upper_limit_umol_per_l"] == "21.0"


def test_the_schema_names_the_units_and_keeps_the_types(db, investigator, coordinator):
    for user, name in ((coordinator, "LiverTest"), (investigator, "InvestigatorLiverTest")):
        schema = api_for(user).get("/api/v1/schema/", {"format": "json"}).json()
        properties = schema["components"]["schemas"][name]["properties"]
        assert properties["bilirubin_umol_per_l"]["type"] == "string"  # a decimal, as before
        assert properties["bilirubin_umol_per_l"]["format"] == "decimal"
        assert "µmol/L" in properties["bilirubin_umol_per_l"]["description"]
        assert "µmol/L" in properties["bilirubin_upper_limit_umol_per_l"]["description"]
        assert properties["alt_u_per_l"]["type"] == "integer"
        assert "U/L" in properties["alt_upper_limit"]["description"]
