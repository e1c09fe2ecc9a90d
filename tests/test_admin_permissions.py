"""Who may do what in the admin: role × own/other centre × view/add/change/delete × every model.

Each cell is checked by its effect (the row's page shows it, the row is created, changed or deleted in the
database), not by a status code alone. Another centre's rows are absent from every list and autocomplete and
open as "does not exist" by URL. Changes and deletions are submitted through ``admin_forms`` (the record's
form as it stands; deletions with their reason). A patient who has clinical records (implantations, systemic
therapy lines) is deleted by the coordinator only; a data manager may delete their own centre's patient who
has none ("bare-patient").
"""

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.urls import reverse

from registry.models import Implantation, Patient
from sites.models import Role, Surgeon

from . import factories
from .admin_forms import delete, implantation_form, patient_form, record_form
from .api_world import world, world_once  # noqa: F401

ROLES = [Role.COORDINATOR, Role.DATA_MANAGER, Role.CENTRE_LEAD, Role.INVESTIGATOR]
ACTIONS = ["view", "add", "change", "delete"]

# model -> (admin app label, the world's record key)
MODELS = {
    "patient": ("registry", "patient"),
    "implantation": ("registry", "implantation"),
    "treatment": ("registry", "treatment"),
    "complication": ("registry", "complication"),
    "followup": ("registry", "follow-up"),
    "livertest": ("registry", "liver-test"),
    "perfusioncheck": ("registry", "perfusion-check"),
    "systemictherapyline": ("registry", "systemic-therapy-line"),
    "systemictoxicity": ("registry", "systemic-toxicity"),
    "readmission": ("registry", "readmission"),
    "centre": ("sites", "centre"),
    "surgeon": ("sites", "surgeon"),
    "complicationtype": ("registry", "complication-type"),
    "pumpmodel": ("registry", "pump-model"),
}
# Registry-wide reference data: no own/other axis, the coordinator alone writes it.
REGISTRY_WIDE = ["complicationtype", "pumpmodel"]
CHILD_MODELS = [
    "treatment",
    "complication",
    "followup",
    "livertest",
    "perfusioncheck",
    "systemictherapyline",
    "systemictoxicity",
    "readmission",
]


def _pocket_infection():
    from registry.models import ComplicationType

    return str(ComplicationType.objects.get(code="pocket_infection").pk)


# model -> the add form's data for a record in the target's centre
ADD = {
    "patient": lambda t: patient_form(t["centre"], birth_year="1955"),
    "implantation": lambda t: implantation_form(t["patient"], t["surgeon"]),
    "treatment": lambda t: {
        "implantation": str(t["implantation"].pk),
        "given_on": "2024-04-10",
        "drug": "oxaliplatin",
        "dose": "100",
        "dose_unit": "mg/m2",
        "dose_change": "full",
    },
    "complication": lambda t: {
        "implantation": str(t["implantation"].pk),
        "type": _pocket_infection(),
        "onset_on": "2024-04-01",
        "grade": "2",
        "management": "none",
        "related_to_pump": "on",
    },
    "followup": lambda t: {
        "implantation": str(t["implantation"].pk),
        "contact_on": "2024-07-01",
        "vital_status": "alive",
    },
    "livertest": lambda t: {
        "implantation": str(t["implantation"].pk),
        "measured_on": "2024-04-05",
        "ast_u_per_l": "41",
    },
    "perfusioncheck": lambda t: {
        "implantation": str(t["implantation"].pk),
        "checked_on": "2024-03-03",
        "timing": "intraoperative",
        "method": "methylene_blue",
    },
    "systemictherapyline": lambda t: {
        "patient": str(t["patient"].pk),
        "line_number": "2",
        "regimen": "folfiri",
        "biologic": "none",
        "started_on": "2023-06-01",
    },
    "systemictoxicity": lambda t: {
        "implantation": str(t["implantation"].pk),
        "term": "neuropathy",
        "grade": "2",
        "onset_on": "2024-04-01",
    },
    "readmission": lambda t: {
        "implantation": str(t["implantation"].pk),
        "kind": "readmission",
        "occurred_on": "2024-03-20",
        "reason": "infection",
    },
    "centre": lambda t: record_form(factories.CentreFactory.build(code=f"NEW-{t['centre'].code}", country="DE")),
    "surgeon": lambda t: {"code": f"NEW-{t['centre'].code}", "centre": str(t["centre"].pk), "prior_pump_count": "3"},
    "complicationtype": lambda t: {
        "code": "new_type",
        "name": "New type",
        "category": "other",
        "grading_system": "ctcae",
        "active": "on",
    },
    "pumpmodel": lambda t: {
        "name": "New pump 40",
        "manufacturer": "New maker",
        "kind": "constant_flow_pump",
        "reservoir_volume_ml": "40",
        "nominal_flow_ml_per_day": "1.5",
        "active": "on",
    },
}
# model -> (form overrides, (field, value) the record has after the change)
CHANGE = {
    "patient": ({"birth_year": "1949"}, ("birth_year", 1949)),
    "implantation": ({"indication": "unresectable_icca"}, ("indication", "unresectable_icca")),
    "treatment": ({"dose": "0.100"}, ("dose", "0.100")),
    "complication": ({"grade": "3"}, ("grade", 3)),
    "followup": ({"response": "PR"}, ("response", "PR")),
    "livertest": ({"ast_u_per_l": "55"}, ("ast_u_per_l", 55)),
    "perfusioncheck": ({"extrahepatic_perfusion": "on"}, ("extrahepatic_perfusion", True)),
    "systemictherapyline": ({"regimen": "capox"}, ("regimen", "capox")),
    "systemictoxicity": ({"grade": "3"}, ("grade", 3)),
    "readmission": ({"reason": "bleeding"}, ("reason", "bleeding")),
    "centre": ({"name": "Renamed"}, ("name", "Renamed")),
    "surgeon": ({"prior_pump_count": "30"}, ("prior_pump_count", 30)),
    "complicationtype": ({"name": "Renamed"}, ("name", "Renamed")),
    "pumpmodel": ({"manufacturer": "Renamed"}, ("manufacturer", "Renamed")),
}


def expected(role, where, model, action, record_key):
    if role == Role.INVESTIGATOR:
        return False  # the admin refuses investigators altogether
    if role == Role.COORDINATOR:
        return True
    if model in REGISTRY_WIDE:
        return action == "view"  # the vocabulary and the pump catalogue: read by every centre, kept by the coordinator
    if where == "other":
        return False
    if role == Role.CENTRE_LEAD:
        return action == "view"
    # Data manager, own centre: clinical records and the centre's surgeons; the centre itself is read-only.
    if model == "centre":
        return action == "view"
    if record_key == "patient" and action == "delete":
        return False  # the patient has clinical records: the coordinator's decision
    return True


MATRIX = [
    (role, where, model, action, MODELS[model][1])
    for role in ROLES
    for where in ("own", "other")
    for model in MODELS
    if model not in REGISTRY_WIDE
    for action in ACTIONS
]
MATRIX += [(role, where, "patient", "delete", "bare-patient") for role in ROLES for where in ("own", "other")]
MATRIX += [
    (role, "registry-wide", model, action, MODELS[model][1])
    for model in REGISTRY_WIDE
    for role in ROLES
    for action in ACTIONS
]


def _cell_id(cell):
    role, where, model, action, key = cell
    return f"{role}-{where}-{model}-{action}" + ("-without-records" if key == "bare-patient" else "")


def login(client, role, world):  # noqa: F811
    user = factories.user_with_role(role, world["own"]["centre"])
    client.force_login(user)
    return user


def _in_centre(model_class, centre):
    path = getattr(model_class, "centre_lookup", None)
    if path is None or path == "id":
        return model_class.objects.all()
    return model_class.objects.filter(**{path: centre})


def attempt(client, model, action, target, record_key):
    """Try ``action`` on ``target``'s record of ``model`` in the admin; return whether it took effect."""
    app_label, _ = MODELS[model]
    record = target[record_key]
    model_class = type(record)

    def url(view, *args):
        return reverse(f"admin:{app_label}_{model}_{view}", args=args)

    if action == "view":
        response = client.get(url("change", record.pk))
        return response.status_code == 200 and response.context["original"].pk == record.pk
    if action == "add":
        rows = _in_centre(model_class, target.get("centre"))
        before = rows.count()
        client.post(url("add"), ADD[model](target))
        return rows.count() == before + 1
    if action == "change":
        overrides, (field, value) = CHANGE[model]
        client.post(url("change", record.pk), record_form(record, **overrides))
        record.refresh_from_db()
        return str(getattr(record, field)) == str(value)
    if action == "delete":
        if model == "surgeon":
            target["implantation"].delete()  # a surgeon with implantations is protected
        if model == "centre":
            Patient.objects.filter(centre=record).delete()
            Surgeon.objects.filter(centre=record).delete()
        delete(client, url("delete", record.pk))
        return not model_class.objects.filter(pk=record.pk).exists()
    raise AssertionError(action)


@pytest.mark.parametrize("role,where,model,action,record_key", MATRIX, ids=map(_cell_id, MATRIX))
def test_admin_permission_matrix(client, world, role, where, model, action, record_key):  # noqa: F811
    if model == "pumpmodel":  # a catalogue model no implantation uses (the shared world predates the catalogue)
        world["registry-wide"]["pump-model"] = factories.PumpModelFactory(name="Unused pump")
    login(client, role, world)
    assert attempt(client, model, action, world[where], record_key) is expected(role, where, model, action, record_key)


# --- Lists and URLs of every centre-scoped page ----------------------------------------------------------

SCOPED_PAGES = ["patient", "implantation", *CHILD_MODELS, "surgeon"]


@pytest.mark.parametrize("model", SCOPED_PAGES)
@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.DATA_MANAGER, Role.CENTRE_LEAD])
def test_lists_show_only_the_users_centres_and_another_centres_row_does_not_exist(client, world, role, model):  # noqa: F811
    login(client, role, world)
    app_label, key = MODELS[model]
    own, other = world["own"][key], world["other"][key]
    response = client.get(reverse(f"admin:{app_label}_{model}_changelist"))
    assert response.status_code == 200
    listed = {row.pk for row in response.context["cl"].result_list}
    assert own.pk in listed
    assert (other.pk in listed) is (role == Role.COORDINATOR)

    response = client.get(reverse(f"admin:{app_label}_{model}_change", args=[other.pk]))
    if role == Role.COORDINATOR:
        assert response.status_code == 200 and response.context["original"].pk == other.pk
        return
    # As for a row that was never there: back to the admin index, saying it does not exist.
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "doesn’t exist" in message and str(other.pk) in message


@pytest.mark.parametrize("role", ROLES)
def test_changelist_shows_only_visible_centres(client, world, role):  # noqa: F811
    login(client, role, world)
    response = client.get(reverse("admin:registry_patient_changelist"))
    if role == Role.INVESTIGATOR:
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
        return
    content = response.content.decode()
    assert world["own"]["patient"].pseudonym in content
    assert (world["other"]["patient"].pseudonym in content) is (role == Role.COORDINATOR)


def test_data_manager_cannot_attach_an_implantation_to_another_centres_patient_or_surgeon(client, world):  # noqa: F811
    login(client, Role.DATA_MANAGER, world)
    other, own = world["other"], world["own"]
    before = Implantation.objects.count()
    response = client.post(
        reverse("admin:registry_implantation_add"), implantation_form(other["patient"], own["surgeon"])
    )
    assert "Select a valid choice" in response.content.decode()
    response = client.post(
        reverse("admin:registry_implantation_add"), implantation_form(own["patient"], other["surgeon"])
    )
    assert "Select a valid choice" in response.content.decode()
    assert Implantation.objects.count() == before


def test_data_manager_cannot_move_own_implantation_to_another_centres_patient(client, world):  # noqa: F811
    login(client, Role.DATA_MANAGER, world)
    implantation = world["own"]["implantation"]
    client.post(
        reverse("admin:registry_implantation_change", args=[implantation.pk]),
        record_form(implantation, patient=str(world["other"]["patient"].pk)),
    )
    implantation.refresh_from_db()
    assert implantation.patient == world["own"]["patient"]


# --- Autocomplete: every autocomplete field of the admin, for every centre role ---------------------------

# (app label, model, field) -> the world's record key of what the field offers
AUTOCOMPLETE = {
    ("registry", "implantation", "patient"): "patient",
    ("registry", "implantation", "surgeon"): "surgeon",
    ("registry", "treatment", "implantation"): "implantation",
    ("registry", "complication", "implantation"): "implantation",
    ("registry", "followup", "implantation"): "implantation",
    ("registry", "livertest", "implantation"): "implantation",
    ("registry", "perfusioncheck", "implantation"): "implantation",
    ("registry", "systemictoxicity", "implantation"): "implantation",
    ("registry", "readmission", "implantation"): "implantation",
    ("registry", "systemictherapyline", "patient"): "patient",
}
# Not a centre's records: accounts, searched by the coordinator alone (memberships are theirs to manage).
COORDINATOR_ONLY_AUTOCOMPLETE = {("sites", "membership", "user")}


def _autocomplete_ids(client, app_label, model_name, field_name):
    response = client.get(
        reverse("admin:autocomplete"),
        {"app_label": app_label, "model_name": model_name, "field_name": field_name, "term": ""},
    )
    return response.status_code, (
        {int(r["id"]) for r in response.json()["results"]} if response.status_code == 200 else set()
    )


def test_the_autocomplete_table_names_every_autocomplete_field_of_the_admin():
    fields = set()
    for model, model_admin in admin.site._registry.items():
        for owner, names in [(model, model_admin.autocomplete_fields)] + [
            (inline.model, inline.autocomplete_fields) for inline in model_admin.inlines
        ]:
            fields |= {(owner._meta.app_label, owner._meta.model_name, name) for name in names}
    assert fields == set(AUTOCOMPLETE) | COORDINATOR_ONLY_AUTOCOMPLETE


@pytest.mark.parametrize("source", sorted(AUTOCOMPLETE), ids=lambda s: ".".join(s))
@pytest.mark.parametrize("role", [Role.DATA_MANAGER, Role.CENTRE_LEAD, Role.COORDINATOR])
def test_autocomplete_never_offers_another_centres_records(client, world, role, source):  # noqa: F811
    login(client, role, world)
    key = AUTOCOMPLETE[source]
    status, ids = _autocomplete_ids(client, *source)
    assert status == 200
    assert world["own"][key].pk in ids
    assert (world["other"][key].pk in ids) is (role == Role.COORDINATOR)


@pytest.mark.parametrize(
    "role,allowed", [(Role.DATA_MANAGER, False), (Role.CENTRE_LEAD, False), (Role.COORDINATOR, True)]
)
def test_only_the_coordinator_searches_accounts(client, world, role, allowed):  # noqa: F811
    user = login(client, role, world)
    status, ids = _autocomplete_ids(client, *next(iter(COORDINATOR_ONLY_AUTOCOMPLETE)))
    assert (status == 200 and user.pk in ids) is allowed
    assert allowed or status == 403


def test_data_manager_of_two_centres_sees_both(client, world):  # noqa: F811
    user = login(client, Role.DATA_MANAGER, world)
    factories.MembershipFactory(user=user, role=Role.DATA_MANAGER, centre=world["other"]["centre"])
    content = client.get(reverse("admin:registry_patient_changelist")).content.decode()
    assert world["own"]["patient"].pseudonym in content and world["other"]["patient"].pseudonym in content


def test_investigator_cannot_log_in_to_the_admin(client, world):  # noqa: F811
    user = factories.user_with_role(Role.INVESTIGATOR)
    response = client.post(reverse("admin:login"), {"username": user.username, "password": "correct-horse-battery"})
    assert "Investigators use the REST API" in response.content.decode()
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    "role,can_manage", [(Role.COORDINATOR, True), (Role.DATA_MANAGER, False), (Role.CENTRE_LEAD, False)]
)
def test_only_the_coordinator_manages_centres_users_and_vocabularies(client, world, role, can_manage):  # noqa: F811
    login(client, role, world)
    for url in (
        reverse("admin:sites_centre_add"),
        reverse("admin:sites_membership_changelist"),
        reverse("admin:auth_user_changelist"),
        reverse("admin:registry_complicationtype_add"),
        reverse("admin:registry_pumpmodel_add"),
    ):
        assert (client.get(url).status_code == 200) is can_manage, url
