"""Two centres, each with one record of every kind, and how to create/change each through the API."""

import pytest

from . import factories


def build_world():
    world = {}
    for name, code in (("own", "OWN"), ("other", "OTHER")):
        centre = factories.CentreFactory(code=code)
        surgeon = factories.SurgeonFactory(centre=centre, code=f"SURG-{code}")
        implantation = factories.ImplantationFactory(patient__centre=centre, surgeon=surgeon)
        world[name] = {
            "centre": centre,
            "surgeon": surgeon,
            "patient": implantation.patient,
            "implantation": implantation,
            "treatment": factories.TreatmentFactory(implantation=implantation),
            "complication": factories.ComplicationFactory(implantation=implantation),
            "follow-up": factories.FollowUpFactory(implantation=implantation),
        }
    return world


# endpoint -> (record key, lookup attribute, payload to create in a centre, patch payload, field to check after patch)
ENDPOINTS = {
    "centres": (
        "centre",
        "code",
        lambda t: {"code": f"NEW-{t['centre'].code}", "name": "New", "country": "DE"},
        {"name": "Renamed"},
        ("name", "Renamed"),
    ),
    "surgeons": (
        "surgeon",
        "code",
        lambda t: {"code": f"NEW-{t['centre'].code}", "centre": t["centre"].code, "prior_pump_count": 3},
        {"prior_pump_count": 30},
        ("prior_pump_count", 30),
    ),
    "patients": (
        "patient",
        "pk",
        lambda t: {"centre": t["centre"].code, "birth_year": 1958, "sex": "female", "primary_tumour": "colorectal"},
        {"birth_year": 1950},
        ("birth_year", 1950),
    ),
    "implantations": (
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
    ),
    "treatments": (
        "treatment",
        "pk",
        lambda t: {
            "implantation": t["implantation"].pk,
            "given_on": "2024-04-10",
            "drug": "oxaliplatin",
            "dose": "100",
            "dose_unit": "mg/m2",
        },
        {"dose": "0.100"},
        ("dose", "0.100"),
    ),
    "complications": (
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
    ),
    "follow-ups": (
        "follow-up",
        "pk",
        lambda t: {"implantation": t["implantation"].pk, "contact_on": "2024-07-01", "vital_status": "alive"},
        {"response": "PR"},
        ("response", "PR"),
    ),
}


@pytest.fixture
def world(db):
    return build_world()
