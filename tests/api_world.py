"""Two centres, each with one record of every kind, how to create/change each through the API, and the one
way the tests write through the API (``write``: the ``If-Match`` and deletion-reason contract)."""

import copy
from typing import NamedTuple

import pytest
from django.db import transaction

from . import factories

# A version a user who cannot read the record could not have seen: sent so that a write by such a user
# reaches the permission check instead of stopping at the missing precondition (428).
UNSEEN_ETAG = '"1"'
DELETE_REASON = "Entered in error"


def write(client, method, url, data=None):
    """POST, PUT, PATCH or DELETE ``url`` as ``client`` does it for real.

    PUT, PATCH and DELETE name the version they overwrite: the ``ETag`` a GET of the record (by the same
    client) returned, sent as ``If-Match`` (or ``UNSEEN_ETAG`` when the GET was refused). A DELETE says why,
    in a JSON body ``{"reason": ...}``.
    """
    headers = {}
    if method in ("put", "patch", "delete"):
        seen = client.get(url)
        etag = seen.headers.get("ETag")
        if etag:
            headers["HTTP_IF_MATCH"] = etag
        elif seen.status_code != 200:
            headers["HTTP_IF_MATCH"] = UNSEEN_ETAG
    if method == "delete" and data is None:
        data = {"reason": DELETE_REASON}
    return getattr(client, method)(url, data, format="json", **headers)


def build_world():
    """Per centre ("own", "other"): a centre, a surgeon, a patient with an implantation carrying one record of
    every kind and a systemic therapy line, and a patient without any clinical record ("bare-patient").
    "registry-wide": a complication type nothing uses (registry-wide data, no centre)."""
    world = {}
    for name, code in (("own", "OWN"), ("other", "OTHER")):
        centre = factories.CentreFactory(code=code)
        surgeon = factories.SurgeonFactory(centre=centre, code=f"SURG-{code}")
        implantation = factories.ImplantationFactory(patient__centre=centre, surgeon=surgeon)
        world[name] = {
            "centre": centre,
            "surgeon": surgeon,
            "patient": implantation.patient,
            "bare-patient": factories.PatientFactory(centre=centre),
            "implantation": implantation,
            "treatment": factories.TreatmentFactory(implantation=implantation),
            "complication": factories.ComplicationFactory(implantation=implantation),
            "follow-up": factories.FollowUpFactory(implantation=implantation),
            "liver-test": factories.LiverTestFactory(implantation=implantation),
            "perfusion-check": factories.PerfusionCheckFactory(implantation=implantation),
            "systemic-therapy-line": factories.SystemicTherapyLineFactory(patient=implantation.patient),
            "systemic-toxicity": factories.SystemicToxicityFactory(implantation=implantation),
            "readmission": factories.ReadmissionFactory(implantation=implantation),
        }
    world["registry-wide"] = {
        "complication-type": factories.ComplicationTypeFactory(code="unused_type", category="other"),
    }
    return world


class Endpoint(NamedTuple):
    key: str  # the record of the world it acts on
    lookup: str  # the attribute its detail URL names the record by
    create: object  # target centre's records -> payload creating a record there
    patch: dict
    check: tuple  # (field, value) the record has after the patch
    kind: str | None  # the opaque kind investigators know the record by (None: not de-identified)


ENDPOINTS = {
    "centres": Endpoint(
        "centre",
        "code",
        lambda t: {"code": f"NEW-{t['centre'].code}", "name": "New", "country": "DE"},
        {"name": "Renamed"},
        ("name", "Renamed"),
        "centre",
    ),
    "surgeons": Endpoint(
        "surgeon",
        "code",
        lambda t: {"code": f"NEW-{t['centre'].code}", "centre": t["centre"].code, "prior_pump_count": 3},
        {"prior_pump_count": 30},
        ("prior_pump_count", 30),
        "surgeon",
    ),
    "patients": Endpoint(
        "patient",
        "pk",
        lambda t: {"centre": t["centre"].code, "birth_year": 1958, "sex": "female", "primary_tumour": "colorectal"},
        {"birth_year": 1950},
        ("birth_year", 1950),
        "patient",
    ),
    "implantations": Endpoint(
        "implantation",
        "pk",
        lambda t: {
            "patient": t["patient"].pk,
            "surgeon": t["surgeon"].code,
            "implanted_on": "2024-01-15",
            "indication": "adjuvant",
            "approach": "robotic",
            "device": "arterial_port",
        },
        {"approach": "laparoscopic"},
        ("approach", "laparoscopic"),
        "implantation",
    ),
    "treatments": Endpoint(
        "treatment",
        "pk",
        lambda t: {
            "implantation": t["implantation"].pk,
            "given_on": "2024-04-10",
            "drug": "fudr",
            "dose": "0.200",
            "dose_unit": "mg/kg/day",
        },
        {"dose": "0.100"},
        ("dose", "0.100"),
        "treatment",
    ),
    "complications": Endpoint(
        "complication",
        "pk",
        lambda t: {
            "implantation": t["implantation"].pk,
            "type": "pocket_infection",
            "onset_on": "2024-04-01",
            "grade": 2,
        },
        {"grade": 3},
        ("grade", 3),
        "complication",
    ),
    "follow-ups": Endpoint(
        "follow-up",
        "pk",
        lambda t: {"implantation": t["implantation"].pk, "contact_on": "2024-07-01", "vital_status": "alive"},
        {"response": "PR"},
        ("response", "PR"),
        "follow-up",
    ),
    "liver-tests": Endpoint(
        "liver-test",
        "pk",
        lambda t: {"implantation": t["implantation"].pk, "measured_on": "2024-04-05", "ast_u_per_l": 41},
        {"ast_u_per_l": 55},
        ("ast_u_per_l", 55),
        "liver-test",
    ),
    "perfusion-checks": Endpoint(
        "perfusion-check",
        "pk",
        lambda t: {
            "implantation": t["implantation"].pk,
            "checked_on": "2024-03-03",
            "timing": "intraoperative",
            "method": "methylene_blue",
            "extrahepatic_perfusion": False,
        },
        {"extrahepatic_perfusion": True},
        ("extrahepatic_perfusion", True),
        "perfusion-check",
    ),
    "systemic-therapy-lines": Endpoint(
        "systemic-therapy-line",
        "pk",
        lambda t: {"patient": t["patient"].pk, "line_number": 2, "regimen": "folfiri", "started_on": "2023-06-01"},
        {"regimen": "capox"},
        ("regimen", "capox"),
        "systemic-therapy-line",
    ),
    "systemic-toxicities": Endpoint(
        "systemic-toxicity",
        "pk",
        lambda t: {"implantation": t["implantation"].pk, "term": "diarrhoea", "grade": 2, "onset_on": "2024-04-01"},
        {"grade": 3},
        ("grade", 3),
        "systemic-toxicity",
    ),
    "readmissions": Endpoint(
        "readmission",
        "pk",
        lambda t: {
            "implantation": t["implantation"].pk,
            "kind": "reoperation",
            "occurred_on": "2024-03-20",
            "reason": "catheter",
        },
        {"reason": "bleeding"},
        ("reason", "bleeding"),
        "readmission",
    ),
    "vocabularies/complication-types": Endpoint(
        "complication-type",
        "code",
        lambda t: {"code": "new_type", "name": "New type", "category": "other", "grading_system": "ctcae"},
        {"name": "Renamed"},
        ("name", "Renamed"),
        None,
    ),
}
# Endpoints whose records belong to a centre (the others are registry-wide: no own/other axis).
CENTRE_ENDPOINTS = [name for name, endpoint in ENDPOINTS.items() if endpoint.key != "complication-type"]


def built_once(build):
    """A module-scoped fixture: ``build()``, run once per test module inside a transaction rolled back at its end.

    Each test runs in a savepoint within it (pytest-django's ``db``), so whatever a test writes is undone
    before the next one: a test costs its own few queries, not the world's. Tests take a ``copy.deepcopy``
    of what ``build`` returned (they may refresh, change or delete the objects)."""

    @pytest.fixture(scope="module")
    def fixture(django_db_setup, django_db_blocker):
        with django_db_blocker.unblock(), transaction.atomic():
            yield build()
            transaction.set_rollback(True)

    return fixture


world_once = built_once(build_world)


@pytest.fixture
def world(world_once, db):
    """This test's copy of the world's objects (a test may refresh, change or delete them)."""
    return copy.deepcopy(world_once)
