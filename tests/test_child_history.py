"""The implantation's history shows its child records' history, with the page's reason (issue 13)."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from registry.child_history import child_history
from registry.models import Complication, LiverTest, Treatment
from registry.services import delete_record, save_record

from .admin_forms import inline_rows, record_form
from .factories import (
    ComplicationFactory,
    ImplantationFactory,
    LiverTestFactory,
    SurgeonFactory,
    TreatmentFactory,
)

REASON = "Corrected from the pump refill sheet"


@pytest.fixture
def implantation(centre_a):
    return ImplantationFactory(patient__centre=centre_a, surgeon=SurgeonFactory(centre=centre_a))


def change_url(implantation):
    return reverse("admin:registry_implantation_change", args=[implantation.pk])


def history_url(implantation):
    return reverse("admin:registry_implantation_history", args=[implantation.pk])


def dose_row(record, **changes):
    return {
        "id": str(record.pk),
        "implantation": str(record.implantation_id),
        "given_on": record.given_on.isoformat(),
        "drug": record.drug,
        "dose": str(record.dose),
        "dose_unit": record.dose_unit,
        "dose_change": record.dose_change,
        "dose_change_reason": record.dose_change_reason,
        "opened_version": str(record.version),
        **changes,
    }


def new_dose_row(implantation, **changes):
    return {
        "id": "",
        "implantation": str(implantation.pk),
        "given_on": (implantation.implanted_on + datetime.timedelta(days=30)).isoformat(),
        "drug": "fudr",
        "dose": "0.100",
        "dose_unit": "mg/kg/day",
        "dose_change": "full",
        "dose_change_reason": "",
        **changes,
    }


def test_a_dose_edited_on_the_implantation_page_keeps_the_pages_reason(client, data_manager_a, implantation):
    dose = TreatmentFactory(implantation=implantation, dose=Decimal("0.120"))
    client.force_login(data_manager_a)
    data = {
        **record_form(implantation),
        **inline_rows("treatments", [dose_row(dose, dose="0.100")], initial=1),
        "change_reason": REASON,
    }

    response = client.post(change_url(implantation), data)

    assert response.status_code == 302, response.content.decode()[:3000]
    latest = Treatment.history.filter(id=dose.pk).latest()
    assert (latest.dose, latest.history_user, latest.history_change_reason) == (
        Decimal("0.100"),
        data_manager_a,
        REASON,
    )


def test_a_row_added_on_the_page_keeps_the_reason_and_unchanged_rows_get_no_history(
    client, data_manager_a, implantation
):
    kept = TreatmentFactory(implantation=implantation)
    client.force_login(data_manager_a)
    data = {
        **record_form(implantation),
        **inline_rows("treatments", [dose_row(kept), new_dose_row(implantation)], initial=1),
        "change_reason": REASON,
    }

    assert client.post(change_url(implantation), data).status_code == 302

    added = Treatment.objects.exclude(pk=kept.pk).get()
    assert added.history.get().history_change_reason == REASON
    assert kept.history.count() == 1  # the unchanged row was not saved again


def test_without_a_reason_the_childs_history_row_has_none(client, data_manager_a, implantation):
    dose = TreatmentFactory(implantation=implantation, dose=Decimal("0.120"))
    client.force_login(data_manager_a)
    data = {**record_form(implantation), **inline_rows("treatments", [dose_row(dose, dose="0.110")], initial=1)}
    assert client.post(change_url(implantation), data).status_code == 302
    assert Treatment.history.filter(id=dose.pk).latest().history_change_reason is None


def test_the_history_page_lists_child_changes_with_what_who_when_and_why(client, data_manager_a, implantation):
    dose = TreatmentFactory(implantation=implantation, dose=Decimal("0.120"))
    client.force_login(data_manager_a)
    data = {
        **record_form(implantation),
        **inline_rows("treatments", [dose_row(dose, dose="0.100")], initial=1),
        "change_reason": REASON,
    }
    assert client.post(change_url(implantation), data).status_code == 302

    page = client.get(history_url(implantation))

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="child-history"' in html
    assert "HAI dose" in html
    assert "dose: 0.120 -&gt; 0.100" in html
    assert REASON in html
    assert data_manager_a.username in html
    rows = page.context["child_history"]
    assert rows[0]["action"] == "Changed" and rows[0]["changes"] == ["dose: 0.120 -> 0.100"]
    assert rows[0]["user"] == data_manager_a.username and rows[0]["reason"] == REASON
    assert rows[1]["action"] == "Added"


def test_every_kind_of_child_deleted_ones_included_newest_first(data_manager_a, implantation):
    complication = ComplicationFactory(implantation=implantation, grade=2)
    liver = LiverTestFactory(implantation=implantation)
    complication.grade = 3
    save_record(complication, user=data_manager_a, reason="Reviewed with the surgeon")
    delete_record(LiverTest.objects.get(pk=liver.pk), user=data_manager_a, reason="Entered twice")
    other = ComplicationFactory(
        implantation=ImplantationFactory(
            patient=implantation.patient, implanted_on=implantation.implanted_on + datetime.timedelta(days=200)
        )
    )

    rows, truncated = child_history(implantation.pk)

    assert not truncated
    assert [r["date"] for r in rows] == sorted((r["date"] for r in rows), reverse=True)
    assert rows[0]["action"] == "Deleted" and rows[0]["kind"] == "liver test" and rows[0]["reason"] == "Entered twice"
    changed = next(r for r in rows if r["action"] == "Changed")
    assert changed["kind"] == "complication" and changed["changes"] == ["grade: 2 -> 3"]
    assert changed["reason"] == "Reviewed with the surgeon" and changed["user"] == data_manager_a.username
    assert str(complication.type) in changed["record"]
    assert other.pk not in {r["record_id"] for r in rows if r["model"] == "complication"}
    assert {r["model"] for r in rows} == {"complication", "livertest"}


def test_choices_and_references_read_as_labels(data_manager_a, implantation):
    complication = ComplicationFactory(implantation=implantation, management="none")
    complication.management = "medical"
    save_record(complication, user=data_manager_a)
    changed = next(r for r in child_history(implantation.pk)[0] if r["action"] == "Changed")
    field = Complication._meta.get_field("management")
    labels = dict(field.flatchoices)
    assert changed["changes"] == [f"{field.verbose_name}: {labels['none']} -> {labels['medical']}"]


def test_the_history_of_another_centres_implantation_stays_closed(client, data_manager_a, centre_b):
    other = ImplantationFactory(patient__centre=centre_b, surgeon=SurgeonFactory(centre=centre_b))
    TreatmentFactory(implantation=other)
    client.force_login(data_manager_a)
    assert client.get(history_url(other)).status_code in (403, 404)


def test_the_page_says_so_when_there_is_no_child_record(client, data_manager_a, implantation):
    client.force_login(data_manager_a)
    page = client.get(history_url(implantation))
    assert page.status_code == 200
    assert "No dose, complication, liver test, follow-up or perfusion check" in page.content.decode()
