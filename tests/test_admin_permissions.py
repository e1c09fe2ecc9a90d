"""Who may do what in the admin: role × own/other centre × view/add/change/delete.

Each cell is checked by its effect (the row shows, is created, changed or
deleted), not by a status code alone.
"""

import pytest
from django.urls import reverse

from registry.models import Implantation, Patient
from sites.models import Role

from . import factories
from .admin_forms import implantation_form, patient_form

ROLES = [Role.COORDINATOR, Role.DATA_MANAGER, Role.CENTRE_LEAD, Role.INVESTIGATOR]

# (role, centre) -> set of allowed actions
EXPECTED = {
    (Role.COORDINATOR, "own"): {"view", "add", "change", "delete"},
    (Role.COORDINATOR, "other"): {"view", "add", "change", "delete"},
    (Role.DATA_MANAGER, "own"): {"view", "add", "change", "delete"},
    (Role.DATA_MANAGER, "other"): set(),
    (Role.CENTRE_LEAD, "own"): {"view"},
    (Role.CENTRE_LEAD, "other"): set(),
    (Role.INVESTIGATOR, "own"): set(),
    (Role.INVESTIGATOR, "other"): set(),
}
MATRIX = [
    (role, where, action)
    for role in ROLES
    for where in ("own", "other")
    for action in ("view", "add", "change", "delete")
]


@pytest.fixture
def world(db):
    own, other = factories.CentreFactory(code="OWN"), factories.CentreFactory(code="OTHER")
    records = {}
    for name, centre in (("own", own), ("other", other)):
        surgeon = factories.SurgeonFactory(centre=centre)
        implantation = factories.ImplantationFactory(patient__centre=centre, surgeon=surgeon)
        records[name] = {
            "centre": centre,
            "surgeon": surgeon,
            "implantation": implantation,
            "patient": implantation.patient,
        }
    return records


def login(client, role, world):
    user = factories.user_with_role(role, world["own"]["centre"])
    client.force_login(user)
    return user


def _visible(client, model, obj):
    url = reverse(f"admin:registry_{model}_change", args=[obj.pk])
    response = client.get(url)
    return response.status_code == 200 and obj.__class__.objects.filter(pk=obj.pk).exists() and str(obj.pk) in url


def _do(client, model, action, target):
    """Attempt ``action`` on ``model`` in ``target``'s centre; return True if it took effect."""
    centre, patient, surgeon = target["centre"], target["patient"], target["surgeon"]
    if model == "patient":
        if action == "view":
            response = client.get(reverse("admin:registry_patient_change", args=[patient.pk]))
            return response.status_code == 200 and patient.pseudonym.encode() in response.content
        if action == "add":
            before = Patient.objects.filter(centre=centre).count()
            client.post(reverse("admin:registry_patient_add"), patient_form(centre, birth_year="1955"))
            return Patient.objects.filter(centre=centre).count() == before + 1
        if action == "change":
            client.post(
                reverse("admin:registry_patient_change", args=[patient.pk]),
                patient_form(
                    centre, pseudonym=patient.pseudonym, birth_year="1949", **_existing_implantation_inline(patient)
                ),
            )
            patient.refresh_from_db()
            return patient.birth_year == 1949
        if action == "delete":
            client.post(reverse("admin:registry_patient_delete", args=[patient.pk]), {"post": "yes"})
            return not Patient.objects.filter(pk=patient.pk).exists()
    implantation = target["implantation"]
    if action == "view":
        response = client.get(reverse("admin:registry_implantation_change", args=[implantation.pk]))
        return response.status_code == 200 and patient.pseudonym.encode() in response.content
    if action == "add":
        before = Implantation.objects.filter(patient=patient).count()
        client.post(reverse("admin:registry_implantation_add"), implantation_form(patient, surgeon))
        return Implantation.objects.filter(patient=patient).count() == before + 1
    if action == "change":
        client.post(
            reverse("admin:registry_implantation_change", args=[implantation.pk]),
            implantation_form(patient, surgeon, implanted_on="2024-02-20", indication="unresectable_icca"),
        )
        implantation.refresh_from_db()
        return implantation.indication == "unresectable_icca"
    if action == "delete":
        client.post(reverse("admin:registry_implantation_delete", args=[implantation.pk]), {"post": "yes"})
        return not Implantation.objects.filter(pk=implantation.pk).exists()
    raise AssertionError(action)


def _existing_implantation_inline(patient):
    from .admin_forms import inline_rows

    rows = [
        {
            "id": str(i.pk),
            "patient": str(patient.pk),
            "implanted_on": i.implanted_on.isoformat(),
            "surgeon": str(i.surgeon_id),
            "indication": i.indication,
            "approach": i.approach,
            "device": i.device,
        }
        for i in patient.implantations.all()
    ]
    return inline_rows("implantations", rows, initial=len(rows))


@pytest.mark.parametrize("model", ["patient", "implantation"])
@pytest.mark.parametrize("role,where,action", MATRIX)
def test_admin_permission_matrix(client, world, model, role, where, action):
    login(client, role, world)
    allowed = action in EXPECTED[(role, where)]
    assert _do(client, model, action, world[where]) is allowed


@pytest.mark.parametrize("role", ROLES)
def test_changelist_shows_only_visible_centres(client, world, role):
    login(client, role, world)
    response = client.get(reverse("admin:registry_patient_changelist"))
    if role == Role.INVESTIGATOR:
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        return
    content = response.content.decode()
    assert world["own"]["patient"].pseudonym in content
    assert (world["other"]["patient"].pseudonym in content) is (role == Role.COORDINATOR)


def test_data_manager_cannot_attach_an_implantation_to_another_centres_patient_or_surgeon(client, world):
    login(client, Role.DATA_MANAGER, world)
    other, own = world["other"], world["own"]
    response = client.post(
        reverse("admin:registry_implantation_add"), implantation_form(other["patient"], own["surgeon"])
    )
    assert "Select a valid choice" in response.content.decode()
    response = client.post(
        reverse("admin:registry_implantation_add"), implantation_form(own["patient"], other["surgeon"])
    )
    assert "Select a valid choice" in response.content.decode()
    assert Implantation.objects.count() == 2


def test_data_manager_cannot_move_own_implantation_to_another_centres_patient(client, world):
    login(client, Role.DATA_MANAGER, world)
    implantation = world["own"]["implantation"]
    client.post(
        reverse("admin:registry_implantation_change", args=[implantation.pk]),
        implantation_form(world["other"]["patient"], world["own"]["surgeon"]),
    )
    implantation.refresh_from_db()
    assert implantation.patient == world["own"]["patient"]


@pytest.mark.parametrize("model_name", ["patient", "surgeon"])
def test_autocomplete_never_offers_another_centres_records(client, world, model_name):
    login(client, Role.DATA_MANAGER, world)
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": "registry", "model_name": "implantation", "field_name": model_name, "term": ""},
    )
    assert response.status_code == 200
    ids = {int(r["id"]) for r in response.json()["results"]}
    assert world["own"][model_name].pk in ids
    assert world["other"][model_name].pk not in ids


def test_data_manager_of_two_centres_sees_both(client, world):
    user = login(client, Role.DATA_MANAGER, world)
    factories.MembershipFactory(user=user, role=Role.DATA_MANAGER, centre=world["other"]["centre"])
    content = client.get(reverse("admin:registry_patient_changelist")).content.decode()
    assert world["own"]["patient"].pseudonym in content and world["other"]["patient"].pseudonym in content


def test_investigator_cannot_log_in_to_the_admin(client, world):
    user = factories.user_with_role(Role.INVESTIGATOR)
    response = client.post(reverse("admin:login"), {"username": user.username, "password": "correct-horse-battery"})
    assert "Investigators use the REST API" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "role,can_manage", [(Role.COORDINATOR, True), (Role.DATA_MANAGER, False), (Role.CENTRE_LEAD, False)]
)
def test_only_the_coordinator_manages_centres_users_and_vocabularies(client, world, role, can_manage):
    login(client, role, world)
    for url in (
        reverse("admin:sites_centre_add"),
        reverse("admin:sites_membership_changelist"),
        reverse("admin:auth_user_changelist"),
        reverse("admin:registry_complicationtype_add"),
    ):
        assert (client.get(url).status_code == 200) is can_manage, url
