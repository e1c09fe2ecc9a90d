"""Investigators get research-grade de-identified data, as the ACS NSQIP participant use file (issue 10).

No calendar date (the implantation's year; other dates as days from the implantation), no integer
id, no pseudonym, no real centre or surgeon code or centre name: opaque codes (api.deidentify),
the same for one investigator on every request and different for another. Nothing lets a date be
recovered by bisection (no date filters, no ordering by a date).
"""

import csv
import io
import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from api import releases as api_releases
from api.deidentify import PREFIXES, Codec
from registry.models import (
    Complication,
    ComplicationType,
    FollowUp,
    Implantation,
    LiverTest,
    Patient,
    PerfusionCheck,
    Readmission,
    SystemicTherapyLine,
    SystemicToxicity,
    Treatment,
)
from reports.models import CentreReport
from sites.models import Centre, Membership, ReportRecipient, Role, Surgeon

from . import factories
from .clients import client_for
from .factories import days_after
from .release_codes import another_releases_codec, release_codec

DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
MONTH = re.compile(r"\d{4}-\d{2}")
OPAQUE = re.compile(r"^[A-Z]{1,2}-[A-Z2-7]{13}$")

# Endpoint -> (kind of its rows, model). Every record endpoint an investigator reads.
RECORDS = {
    "centres": ("centre", Centre),
    "surgeons": ("surgeon", Surgeon),
    "patients": ("patient", Patient),
    "implantations": ("implantation", Implantation),
    "treatments": ("treatment", Treatment),
    "complications": ("complication", Complication),
    "follow-ups": ("follow-up", FollowUp),
    "liver-tests": ("liver-test", LiverTest),
    "perfusion-checks": ("perfusion-check", PerfusionCheck),
    "systemic-therapy-lines": ("systemic-therapy-line", SystemicTherapyLine),
    "systemic-toxicities": ("systemic-toxicity", SystemicToxicity),
    "readmissions": ("readmission", Readmission),
}
# Fields that name a row: always an opaque code of this kind for investigators.
REFERENCES = {"patient": "patient", "implantation": "implantation", "centre": "centre", "surgeon": "surgeon"}

STATS = [
    ("complications", {"type": "any"}),
    ("complications", {"type": "technical", "within_days": "90"}),
    ("pump-use", {}),
    ("survival", {}),
    ("survival", {"endpoint": "pump_failure"}),
    ("cumulative-incidence", {"event": "technical", "at_days": "90"}),
    ("observed-expected", {"outcome": "technical_90d"}),
    ("observed-expected", {"outcome": "technical_90d", "group_by": "surgeon"}),
]
GROUPINGS = [None, "centre", "indication", "surgeon_experience", "surgeon_volume", "centre_volume", "sex"]


@pytest.fixture
def world(db):
    """Two centres whose codes, names, surgeon codes and pseudonyms cannot occur inside an opaque code
    (each has a character outside base32), with one record of every kind."""
    rows = {}
    for code, name in (("LYON-01", "Hospices civils de Lyon"), ("NANTES-09", "CHU de Nantes")):
        centre = factories.CentreFactory(code=code, name=name, country="FR")
        surgeon = factories.SurgeonFactory(centre=centre, code=f"{code}-S1", prior_pump_count=3)
        patient = factories.PatientFactory(centre=centre, consent_on=days_after(-3))
        first = factories.ImplantationFactory(patient=patient, surgeon=surgeon, implanted_on=days_after(0))
        factories.ImplantationFactory(patient__centre=centre, surgeon=surgeon, implanted_on=days_after(40))
        factories.PerfusionCheckFactory(implantation=first, checked_on=days_after(7))
        factories.TreatmentFactory(implantation=first, given_on=days_after(17))
        factories.ComplicationFactory(implantation=first, onset_on=days_after(60))
        factories.LiverTestFactory(implantation=first, measured_on=days_after(-10), is_baseline=True)
        factories.LiverTestFactory(implantation=first, measured_on=days_after(30))
        factories.SystemicToxicityFactory(implantation=first, onset_on=days_after(45))
        factories.ReadmissionFactory(implantation=first, occurred_on=days_after(20))
        factories.SystemicTherapyLineFactory(patient=patient, started_on=days_after(-200), ended_on=days_after(-30))
        factories.FollowUpFactory(
            implantation=first,
            contact_on=days_after(300),
            vital_status="dead",
            died_on=days_after(300),
            resected=True,
            resection_on=days_after(120),
            resection_margin="R0",
            hepatic_progression_on=days_after(200),
            progression_on=days_after(210),
            pump_ended_on=days_after(250),
            pump_end_reason="progression",
            pump_explanted=True,
        )
        rows[code] = {"centre": centre, "surgeon": surgeon, "patient": patient, "implantation": first}
    return rows


@pytest.fixture
def other_investigator(db):
    return factories.user_with_role(Role.INVESTIGATOR, username="investigator-2")


def body_of(response):
    assert response.status_code == 200, response.content
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def every_pk():
    """Every primary key in the registry's tables (the rows an investigator could be shown)."""
    pks = set()
    for model in (*(model for _, model in RECORDS.values()), ComplicationType, CentreReport, Membership):
        pks |= set(model.objects.values_list("pk", flat=True))
    return pks


def secrets():
    """What must never reach an investigator: real codes, centre names and countries' pairing, pseudonyms."""
    values = set(Centre.objects.values_list("code", flat=True)) | set(Centre.objects.values_list("name", flat=True))
    values |= set(Surgeon.objects.values_list("code", flat=True))
    values |= set(Patient.objects.values_list("pseudonym", flat=True))
    return values


def investigator_urls(investigator):
    codec = {kind: release_codec(kind) for kind, _ in RECORDS.values()}
    urls = [("/api/v1/vocabularies/", {}), ("/api/v1/vocabularies/complication-types/", {})]
    urls.append(("/api/v1/vocabularies/complication-types/biliary_sclerosis/", {}))
    urls.append(("/api/v1/reports/", {}))
    for endpoint, (kind, model) in RECORDS.items():
        urls.append((f"/api/v1/{endpoint}/", {}))
        for pk in model.objects.values_list("pk", flat=True):
            urls.append((f"/api/v1/{endpoint}/{codec[kind].encode(pk)}/", {}))
    for path, params in STATS:
        for group_by in GROUPINGS if path != "observed-expected" else [None]:
            urls.append((f"/api/v1/stats/{path}/", {**params, **({"group_by": group_by} if group_by else {})}))
    return urls


def test_investigator_payloads_carry_no_date_id_pseudonym_or_real_code(world, investigator):
    """Every endpoint an investigator reads, list and detail, JSON and CSV."""
    client = client_for(investigator)
    hidden = secrets()
    scanned = 0
    for url, params in investigator_urls(investigator):
        for fmt in ("json", "csv"):
            text = body_of(client.get(url, {**params, "format": fmt}))
            where = f"{url} {params} {fmt}"
            assert not DATE.search(text), f"a date in {where}: {DATE.search(text)[0]}"
            assert not MONTH.search(text), f"a month in {where}: {MONTH.search(text)[0]}"
            for secret in hidden:
                assert secret not in text, f"{secret!r} in {where}"
            rows = json_rows(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text)))
            for row in rows:
                assert "id" not in row and "pseudonym" not in row, where
                assert not any(key.endswith(("_id", "_on", "_at")) for key in row), where
                for key, kind in (*REFERENCES.items(), ("code", None)):
                    value = row.get(key)
                    if value in (None, "") or (key == "code" and "/vocabularies/" in url):
                        continue
                    assert isinstance(value, str) and OPAQUE.match(value), f"{key}={value!r} in {where}"
                    if kind is not None:
                        assert value.startswith(PREFIXES[kind] + "-"), f"{key}={value!r} in {where}"
                if "/stats/" in url and row.get("group"):
                    assert not (isinstance(row["group"], int) or str(row["group"]).isdigit()), where
            scanned += 1
    assert scanned > 100


def json_rows(text):
    data = json.loads(text)
    if isinstance(data, dict) and "results" in data:
        return data["results"]
    if isinstance(data, dict) and "groups" in data:
        return data["groups"]
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        return [item for items in data.values() for item in items]  # vocabularies
    return [data]


@pytest.mark.parametrize("endpoint", sorted(RECORDS))
def test_no_reference_or_row_is_an_integer_id(world, investigator, endpoint):
    """Every value that names a row is that row's opaque code, decodable by this investigator only."""
    kind, model = RECORDS[endpoint]
    pks = every_pk()
    rows = client_for(investigator).get(f"/api/v1/{endpoint}/").json()["results"]
    assert len(rows) == model.objects.count()
    decoded = {release_codec(kind).decode(row["code"]) for row in rows}
    assert decoded == set(model.objects.values_list("pk", flat=True))
    for row in rows:
        assert not any(
            isinstance(value, int) and not isinstance(value, bool) and value in pks and key in ("code", *REFERENCES)
            for key, value in row.items()
        )
        for key, ref_kind in REFERENCES.items():
            if key in row:
                assert release_codec(ref_kind).decode(row[key]) is not None


def test_centres_and_surgeons_show_only_codes_and_their_numbers(world, investigator):
    client = client_for(investigator)
    [centre] = [c for c in client.get("/api/v1/centres/").json()["results"] if c["active"]][:1]
    assert set(centre) == {"code", "active"}
    surgeon = client.get("/api/v1/surgeons/").json()["results"][0]
    assert set(surgeon) == {"code", "centre", "prior_pump_count", "active"}
    assert surgeon["prior_pump_count"] == 3


def test_codes_are_drawn_per_release_the_same_for_every_investigator_of_one(world, investigator, other_investigator):
    from reports import releases

    def codes(user, **params):
        body = client_for(user).get("/api/v1/implantations/", params).json()["results"]
        return {(row["code"], row["patient"], row["surgeon"], row["centre"]) for row in body}

    first, again, other = codes(investigator), codes(investigator), codes(other_investigator)
    assert first == again == other and len(first) == 4
    earlier = api_releases.latest_release()
    later = releases.freeze_release("later")
    flat = lambda rows: {code for row in rows for code in row}  # noqa: E731
    assert not flat(codes(investigator, release=later.name)) & flat(first)
    assert codes(other_investigator, release=earlier.name) == first
    # Statistics too, cached or not: the release's centre codes, in the codes' order.
    params = {"group_by": "centre", "release": earlier.name}
    mine = [g["group"] for g in client_for(investigator).get("/api/v1/stats/pump-use/", params).json()["groups"]]
    theirs = [
        g["group"] for g in client_for(other_investigator).get("/api/v1/stats/pump-use/", params).json()["groups"]
    ]
    codec = Codec(earlier.codes_key, "centre")
    assert mine == theirs and set(mine) == {codec.encode(c.pk) for c in Centre.objects.all()}
    assert mine == sorted(mine)  # in the codes' order, not the real codes'


def test_filters_and_detail_urls_take_the_opaque_codes(world, investigator):
    client = client_for(investigator)
    lyon = world["LYON-01"]
    code = {kind: release_codec(kind) for kind in ("centre", "surgeon", "patient", "implantation")}
    centre, surgeon = code["centre"].encode(lyon["centre"].pk), code["surgeon"].encode(lyon["surgeon"].pk)
    patient, implantation = (
        code["patient"].encode(lyon["patient"].pk),
        code["implantation"].encode(lyon["implantation"].pk),
    )
    rows = client.get("/api/v1/implantations/", {"centre": centre}).json()["results"]
    assert len(rows) == 2 and {r["centre"] for r in rows} == {centre}
    assert len(client.get("/api/v1/implantations/", {"surgeon": surgeon}).json()["results"]) == 2
    assert [r["code"] for r in client.get("/api/v1/implantations/", {"patient": patient}).json()["results"]] == [
        implantation
    ]
    assert len(client.get("/api/v1/follow-ups/", {"implantation": implantation}).json()["results"]) == 1
    assert len(client.get("/api/v1/systemic-therapy-lines/", {"patient": patient}).json()["results"]) == 1
    assert len(client.get("/api/v1/patients/", {"centre": centre}).json()["results"]) == 2
    assert client.get(f"/api/v1/implantations/{implantation}/").json()["patient"] == patient
    assert client.get(f"/api/v1/centres/{centre}/").json() == {"code": centre, "active": True}
    assert client.get(f"/api/v1/surgeons/{surgeon}/").json()["centre"] == centre
    groups = client.get("/api/v1/stats/pump-use/", {"centre": centre, "group_by": "centre"}).json()["groups"]
    assert [g["group"] for g in groups] == [centre]


@pytest.mark.parametrize(
    "endpoint,name",
    [
        ("implantations", "centre"),
        ("implantations", "surgeon"),
        ("implantations", "patient"),
        ("treatments", "implantation"),
        ("systemic-therapy-lines", "patient"),
        ("surgeons", "centre"),
    ],
)
def test_a_real_id_or_code_or_an_unknown_code_is_a_400_naming_the_parameter(world, investigator, endpoint, name):
    client = client_for(investigator)
    lyon = world["LYON-01"]
    real = {"centre": lyon["centre"].code, "surgeon": lyon["surgeon"].code}.get(name, str(lyon[name].pk))
    someone_elses = another_releases_codec(name).encode(lyon[name].pk)
    of_no_row = release_codec(name).encode(999_999_999)
    for value in (real, someone_elses, of_no_row, "C-AAAAAAAAAAAAA", "nonsense"):
        response = client.get(f"/api/v1/{endpoint}/", {name: value})
        assert response.status_code == 400, (value, response.content)
        assert list(response.json()["errors"]) == [name]


def test_a_detail_url_by_real_id_or_code_is_a_404(world, investigator):
    client = client_for(investigator)
    lyon = world["LYON-01"]
    assert client.get(f"/api/v1/implantations/{lyon['implantation'].pk}/").status_code == 404
    assert client.get(f"/api/v1/patients/{lyon['patient'].pk}/").status_code == 404
    assert client.get(f"/api/v1/centres/{lyon['centre'].code}/").status_code == 404
    assert client.get(f"/api/v1/surgeons/{lyon['surgeon'].code}/").status_code == 404
    # A code of another kind, or another investigator's code of the row.
    assert client.get(f"/api/v1/patients/{release_codec('centre').encode(lyon['patient'].pk)}/").status_code == 404
    other = another_releases_codec("patient").encode(lyon["patient"].pk)
    assert client.get(f"/api/v1/patients/{other}/").status_code == 404


@pytest.mark.parametrize(
    "url,params,name",
    [
        ("implantations", {"implanted_from": "2024-03-15"}, "implanted_from"),
        ("implantations", {"implanted_from": "2024-03"}, "implanted_from"),
        ("implantations", {"implanted_to": "2024-03"}, "implanted_to"),
        ("implantations", {"implanted_after": "2024-03-15"}, "implanted_after"),
        ("implantations", {"implanted_before": "2024-03-15"}, "implanted_before"),
        ("treatments", {"given_on_after": "2024-03-15"}, "given_on_after"),
        ("follow-ups", {"contact_on_before": "2024-03-15"}, "contact_on_before"),
        ("complications", {"onset_on_after": "2024-03-15"}, "onset_on_after"),
        ("liver-tests", {"measured_on_after": "2024-03-15"}, "measured_on_after"),
        ("perfusion-checks", {"checked_on_after": "2024-03-15"}, "checked_on_after"),
        ("stats/pump-use", {"implanted_from": "2024-03"}, "implanted_from"),
        ("centres", {"country": "FR"}, "country"),
        ("implantations", {"ordering": "implanted_on"}, "ordering"),
        ("implantations", {"ordering": "-implanted_on"}, "ordering"),
        ("implantations", {"ordering": "indication,id"}, "ordering"),
        ("treatments", {"ordering": "-given_on"}, "ordering"),
        ("follow-ups", {"ordering": "contact_on"}, "ordering"),
        ("patients", {"ordering": "pseudonym"}, "ordering"),
        ("patients", {"ordering": "id"}, "ordering"),
        ("centres", {"ordering": "code"}, "ordering"),
        ("surgeons", {"ordering": "code"}, "ordering"),
        ("systemic-therapy-lines", {"ordering": "started_on"}, "ordering"),
    ],
)
def test_no_date_can_be_recovered_by_bisection(world, investigator, url, params, name):
    response = client_for(investigator).get(f"/api/v1/{url}/", params)
    assert response.status_code == 400, response.content
    assert name in response.json()["errors"]


def test_whole_years_are_the_investigators_date_filter(world, investigator):
    client = client_for(investigator)
    assert (
        len(client.get("/api/v1/implantations/", {"implanted_from": "2024", "implanted_to": "2024"}).json()["results"])
        == 4
    )
    assert client.get("/api/v1/implantations/", {"implanted_from": "2025"}).json()["results"] == []
    response = client.get("/api/v1/implantations/", {"implanted_from": "2024-03"})
    assert "Whole years only" in response.json()["errors"]["implanted_from"][0]
    response = client.get("/api/v1/treatments/", {"given_on_after": "2024-03-15"})
    assert "not offered to investigators" in response.json()["errors"]["given_on_after"][0]


def test_investigators_may_order_by_what_is_not_a_date_or_an_id(world, investigator):
    client = client_for(investigator)
    for url, ordering in (
        ("implantations", "-indication"),
        ("patients", "birth_year"),
        ("surgeons", "prior_pump_count"),
        ("complications", "grade"),
        ("systemic-therapy-lines", "line_number"),
    ):
        assert client.get(f"/api/v1/{url}/", {"ordering": ordering}).status_code == 200, url


def test_investigators_default_order_follows_neither_date_nor_id(centre_a, investigator):
    surgeon = factories.SurgeonFactory(centre=centre_a)
    for day in range(10):
        factories.ImplantationFactory(patient__centre=centre_a, surgeon=surgeon, implanted_on=days_after(day * 30))
    client = client_for(investigator)
    codes = [row["code"] for row in client.get("/api/v1/implantations/").json()["results"]]
    assert codes == [row["code"] for row in client.get("/api/v1/implantations/").json()["results"]]  # stable
    pks = [release_codec("implantation").decode(code) for code in codes]
    assert pks not in (sorted(pks), sorted(pks, reverse=True))
    csv_text = body_of(client.get("/api/v1/implantations/", {"format": "csv"}))
    assert [row["code"] for row in csv.DictReader(io.StringIO(csv_text))] == codes


def test_days_count_from_the_implantation(world, investigator):
    """Day 0 is the implantation; a patient's own dates count from the first implantation."""
    client = client_for(investigator)
    implantation = release_codec("implantation").encode(world["LYON-01"]["implantation"].pk)
    patient = release_codec("patient").encode(world["LYON-01"]["patient"].pk)
    row = client.get(f"/api/v1/implantations/{implantation}/").json()
    assert row["implantation_year"] == 2024 and "implanted_on" not in row
    assert row["days_to_first_dose"] == 17

    def only(endpoint, **params):
        [one] = client.get(f"/api/v1/{endpoint}/", {"implantation": implantation, **params}).json()["results"]
        return one

    assert only("treatments")["given_day"] == 17
    assert only("complications")["onset_day"] == 60
    assert only("perfusion-checks")["checked_day"] == 7
    assert only("liver-tests", is_baseline="true")["measured_day"] == -10
    assert only("liver-tests", is_baseline="false")["measured_day"] == 30
    follow_up = only("follow-ups")
    assert {key: value for key, value in follow_up.items() if key.endswith("_day")} == {
        "contact_day": 300,
        "died_day": 300,
        "resection_day": 120,
        "hepatic_progression_day": 200,
        "progression_day": 210,
        "pump_ended_day": 250,
    }
    [line] = client.get("/api/v1/systemic-therapy-lines/", {"patient": patient}).json()["results"]
    assert (line["started_day"], line["ended_day"]) == (-200, -30)
    # The same in CSV.
    text = body_of(client.get("/api/v1/follow-ups/", {"implantation": implantation, "format": "csv"}))
    [csv_row] = csv.DictReader(io.StringIO(text))
    assert csv_row["resection_day"] == "120" and set(csv_row) == set(follow_up)


def test_patient_level_days_count_from_the_first_implantation(centre_a, investigator):
    patient = factories.PatientFactory(centre=centre_a)
    surgeon = factories.SurgeonFactory(centre=centre_a)
    factories.ImplantationFactory(patient=patient, surgeon=surgeon, implanted_on=days_after(100))
    factories.ImplantationFactory(patient=patient, surgeon=surgeon, implanted_on=days_after(10))
    factories.SystemicTherapyLineFactory(patient=patient, started_on=days_after(0), ended_on=days_after(50))
    never = factories.PatientFactory(centre=centre_a)
    factories.SystemicTherapyLineFactory(patient=never, started_on=days_after(0), ended_on=None)
    client = client_for(investigator)
    codec = release_codec("patient")
    [line] = client.get("/api/v1/systemic-therapy-lines/", {"patient": codec.encode(patient.pk)}).json()["results"]
    assert (line["started_day"], line["ended_day"]) == (-10, 40)
    [line] = client.get("/api/v1/systemic-therapy-lines/", {"patient": codec.encode(never.pk)}).json()["results"]
    assert (line["started_day"], line["ended_day"]) == (None, None)


@pytest.mark.parametrize("endpoint", sorted(RECORDS))
def test_investigator_queries_do_not_grow_with_page_size(centre_a, investigator, endpoint):
    for _ in range(12):
        implantation = factories.ImplantationFactory(
            patient__centre=centre_a, surgeon=factories.SurgeonFactory(centre=centre_a)
        )
        factories.TreatmentFactory(implantation=implantation)
        factories.ComplicationFactory(implantation=implantation)
        factories.FollowUpFactory(implantation=implantation)
        factories.LiverTestFactory(implantation=implantation)
        factories.PerfusionCheckFactory(implantation=implantation)
        factories.SystemicTherapyLineFactory(patient=implantation.patient)
        factories.SystemicToxicityFactory(implantation=implantation)
        factories.ReadmissionFactory(implantation=implantation)
    client = client_for(investigator)

    def count(page_size):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/api/v1/{endpoint}/", {"page_size": page_size}).status_code == 200
        return len(queries)

    count(1)
    # Four reads, and three for the release: which is the latest, and pointing the connection at it and back.
    assert count(2) == count(12) <= 7


def test_data_managers_and_the_coordinator_still_get_dates_and_codes(world, coordinator):
    lyon = world["LYON-01"]
    manager = factories.user_with_role(Role.DATA_MANAGER, lyon["centre"], username="dm-lyon")
    for user in (manager, coordinator):
        client = client_for(user)
        row = client.get(f"/api/v1/implantations/{lyon['implantation'].pk}/").json()
        assert (row["id"], row["implanted_on"], row["centre"], row["surgeon"], row["patient"]) == (
            lyon["implantation"].pk,
            "2024-03-01",
            "LYON-01",
            "LYON-01-S1",
            lyon["patient"].pk,
        )
        [treatment] = client.get("/api/v1/treatments/", {"implantation": lyon["implantation"].pk}).json()["results"]
        assert treatment["given_on"] == "2024-03-18"
        patient = client.get(f"/api/v1/patients/{lyon['patient'].pk}/").json()
        assert patient["pseudonym"] == lyon["patient"].pseudonym
        assert client.get("/api/v1/centres/LYON-01/").json()["name"] == "Hospices civils de Lyon"
        groups = client.get("/api/v1/stats/pump-use/", {"group_by": "centre"}).json()["groups"]
        assert "LYON-01" in [g["group"] for g in groups]
        assert client.get("/api/v1/implantations/", {"ordering": "-implanted_on"}).status_code == 200
        assert client.get("/api/v1/implantations/", {"implanted_from": "2024-03"}).status_code == 200


def test_the_investigator_schema_documents_the_investigator_shape(investigator):
    schema = client_for(investigator).get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "InvestigatorImplantation" in text and "implantation_year" in text and "given_day" in text
    assert "opaque code" in text


# --- Pseudonyms: generated by the registry; only the coordinator sets one ------------------------


def test_only_the_coordinator_sets_a_pseudonym_through_the_api(centre_a, data_manager_a, coordinator):
    payload = {"centre": "CENTRE-A", "birth_year": 1958, "sex": "female", "primary_tumour": "colorectal"}
    response = client_for(data_manager_a).post("/api/v1/patients/", {**payload, "pseudonym": "MRN-123456"})
    assert response.status_code == 400 and list(response.json()["errors"]) == ["pseudonym"]
    assert not Patient.objects.filter(pseudonym="MRN-123456").exists()
    created = client_for(data_manager_a).post("/api/v1/patients/", payload).json()
    assert created["pseudonym"].startswith("HAI-")
    url = f"/api/v1/patients/{created['id']}/"
    # Sending back the pseudonym a patient has (a PUT of what was read) is no change; a new one is refused.
    # (If-Match "*": these writes are about the pseudonym, not the version; tests/test_versioned_writes.py)
    assert (
        client_for(data_manager_a).patch(url, {"pseudonym": created["pseudonym"]}, HTTP_IF_MATCH="*").status_code == 200
    )
    response = client_for(data_manager_a).patch(url, {"pseudonym": "OTHER-REG-7"}, HTTP_IF_MATCH="*")
    assert response.status_code == 400 and "pseudonym" in response.json()["errors"]
    response = client_for(data_manager_a).patch(url, {"pseudonym": ""}, HTTP_IF_MATCH="*")
    assert response.status_code == 400 and "pseudonym" in response.json()["errors"]
    assert Patient.objects.get(pk=created["id"]).pseudonym == created["pseudonym"]
    # The coordinator migrates a patient from another registry with its pseudonym.
    response = client_for(coordinator).post("/api/v1/patients/", {**payload, "pseudonym": "OLDREG-0042"})
    assert response.status_code == 201 and response.json()["pseudonym"] == "OLDREG-0042"
    assert client_for(coordinator).patch(url, {"pseudonym": "OLDREG-0043"}, HTTP_IF_MATCH="*").status_code == 200


def test_only_the_coordinator_sets_a_pseudonym_in_the_admin(client, centre_a, data_manager_a, coordinator):
    from .admin_forms import patient_form

    patient = factories.PatientFactory(centre=centre_a, pseudonym="PT-777777")
    url = reverse("admin:registry_patient_change", args=[patient.pk])
    client.force_login(data_manager_a)
    page = client.get(url).content.decode()
    assert 'name="pseudonym"' not in page and "PT-777777" in page  # shown, read-only
    client.post(reverse("admin:registry_patient_add"), patient_form(centre_a, pseudonym="MRN-555555"))
    assert not Patient.objects.filter(pseudonym="MRN-555555").exists()
    assert Patient.objects.filter(centre=centre_a).exclude(pk=patient.pk).get().pseudonym.startswith("HAI-")
    client.force_login(coordinator)
    assert 'name="pseudonym"' in client.get(url).content.decode()
    client.post(reverse("admin:registry_patient_add"), patient_form(centre_a, pseudonym="OLDREG-0042"))
    assert Patient.objects.filter(pseudonym="OLDREG-0042").exists()


def test_report_recipients_are_not_in_any_investigator_payload(world, investigator):
    """A centre's e-mail recipients name it: they are nowhere in what an investigator reads."""
    ReportRecipient.objects.create(centre=world["LYON-01"]["centre"], email="lead@chu-lyon.example")
    client = client_for(investigator)
    for url, params in investigator_urls(investigator)[:20]:
        assert "chu-lyon" not in body_of(client.get(url, params))


def test_which_cells_are_hidden_does_not_depend_on_the_investigator(db, coordinator):
    """Suppression runs in the public order (real codes) before the labels are made opaque: otherwise two
    investigators would hide different complementary cells, and their answers together would give one back."""
    from reports import disclosure

    for index, (count, treated) in enumerate(((20, 9), (8, 3), (20, 10), (15, 7), (12, 6))):
        centre = factories.CentreFactory(code=f"CX-0{index}")
        for row in range(count):
            implantation = factories.ImplantationFactory(patient__centre=centre)
            if row < treated:
                factories.TreatmentFactory(implantation=implantation)
    params = {"group_by": "centre"}
    public = client_for(coordinator).get("/api/v1/stats/pump-use/", params).json()["groups"]
    expected = {g["group"] for g in disclosure.suppress_proportions(public, "treated") if g.get("suppressed")}
    assert len(expected) == 2  # one primary (3 treated) and its complement, the next in the public order
    names = {centre.pk: centre.code for centre in Centre.objects.all()}
    for number in range(6):
        investigator = factories.user_with_role(Role.INVESTIGATOR, username=f"investigator-{number}")
        codec = release_codec("centre")
        groups = client_for(investigator).get("/api/v1/stats/pump-use/", params).json()["groups"]
        assert {names[codec.decode(g["group"])] for g in groups if g["suppressed"]} == expected
