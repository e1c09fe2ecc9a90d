"""Data releases (reports.releases, api.releases): frozen, de-identified, what investigators read (issue 15)."""

import datetime
import io
import re

import pandas
import pyarrow.parquet
import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from lifelines import KaplanMeierFitter

from api import serializers as api_serializers
from registry import demo
from registry.models import Complication, Implantation, Patient
from reports import analysis_dataset, outcomes, releases
from reports.models import Release
from sites.models import Role

from . import factories
from .clients import client_for
from .factories import days_after

pytestmark = pytest.mark.releases_by_hand

ISO_DATE = re.compile(r"\b(19|20)\d\d-[01]\d-[0-3]\d\b")


def implantation_codes(client, **params):
    response = client.get("/api/v1/implantations/", {"page_size": 500, **params})
    assert response.status_code == 200, response.content
    return sorted(row.get("code", row.get("id")) for row in response.json()["results"])


@pytest.fixture
def registry(centre_a):
    surgeon = factories.SurgeonFactory(centre=centre_a)
    rows = [
        factories.ImplantationFactory(patient__centre=centre_a, surgeon=surgeon, implanted_on=days_after(index))
        for index in range(4)
    ]
    factories.ComplicationFactory(implantation=rows[0])
    factories.TreatmentFactory(implantation=rows[1])
    return rows


def test_a_release_is_immutable_and_its_checksum_stable(registry, investigator):
    release = releases.freeze_release("2026-12")
    client = client_for(investigator)
    before = client.get("/api/v1/implantations/", {"release": release.name}).json()
    stats_before = client.get("/api/v1/stats/pump-use/", {"release": release.name}).json()

    # Later writes to the live registry: a new case, an edit, a deletion.
    factories.ImplantationFactory(patient__centre=registry[0].patient.centre)
    patient = Patient.objects.get(pk=registry[2].patient_id)
    patient.ecog = 2
    patient.save()
    Complication.objects.filter(implantation=registry[0]).delete()

    assert client.get("/api/v1/implantations/", {"release": release.name}).json() == before
    assert client.get("/api/v1/stats/pump-use/", {"release": release.name}).json() == stats_before
    assert releases.verify(release)
    assert releases.compute_checksum(release.name, release.cut, release.method_version, release.storage) == (
        Release.objects.get(pk=release.pk).checksum
    )
    assert re.fullmatch(r"[0-9a-f]{64}", release.checksum)


def test_the_database_refuses_to_change_a_release(registry):
    release = releases.freeze_release("2026-12")
    table = releases._table(release.storage, Implantation)
    for statement in (f"DELETE FROM {table}", f"UPDATE {table} SET indication = 'x'"):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    release.name = "renamed"
    with pytest.raises(ValueError, match="never changed"):
        release.save()
    assert releases.verify(Release.objects.get(pk=release.pk))


def test_a_changed_release_fails_its_checksum(registry):
    release = releases.freeze_release("2026-12")
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {releases._table(release.storage, Implantation)} DISABLE TRIGGER ALL")
        cursor.execute(f"UPDATE {releases._table(release.storage, Implantation)} SET indication = 'adjuvant'")
    assert not releases.verify(release)


def test_investigators_without_release_read_the_latest_never_live_rows(registry, investigator, coordinator):
    client = client_for(investigator)
    response = client.get("/api/v1/implantations/")
    assert response.status_code == 404 and "No data release" in response.json()["detail"]

    first = releases.freeze_release("first")
    at_first = implantation_codes(client)
    assert len(at_first) == 4 and implantation_codes(client, release="first") == at_first
    factories.ImplantationFactory(patient__centre=registry[0].patient.centre)
    assert implantation_codes(client) == at_first  # the live registry has five: investigators still read four

    second = releases.freeze_release("second")
    assert len(implantation_codes(client)) == 5
    assert len(implantation_codes(client, release=first.name)) == 4
    listed = client.get("/api/v1/releases/").json()
    assert [(r["name"], r["latest"]) for r in listed] == [(second.name, True), (first.name, False)]
    assert len(implantation_codes(client_for(coordinator))) == 5  # the coordinator reads live rows


def test_release_parameter_errors(registry, investigator, coordinator, data_manager_a):
    releases.freeze_release("first")
    unknown = client_for(investigator).get("/api/v1/implantations/", {"release": "no-such"})
    assert unknown.status_code == 400 and "release" in unknown.json()["errors"]
    for user in (coordinator, data_manager_a):
        response = client_for(user).get("/api/v1/implantations/", {"release": "first"})
        assert response.status_code == 400, user
        assert client_for(user).get("/api/v1/stats/pump-use/", {"release": "first"}).status_code == 400


def test_only_the_coordinator_freezes_a_release(registry, investigator, coordinator, data_manager_a):
    for user in (investigator, data_manager_a):
        assert client_for(user).post("/api/v1/releases/", {"name": "x"}, format="json").status_code == 403
    created = client_for(coordinator).post("/api/v1/releases/", {"name": "2026-12"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["row_counts"]["implantations"] == 4
    again = client_for(coordinator).post("/api/v1/releases/", {"name": "2026-12"}, format="json")
    assert again.status_code == 400 and "name" in again.json()["errors"]
    future = (timezone.now() + datetime.timedelta(days=1)).isoformat()
    later = client_for(coordinator).post("/api/v1/releases/", {"name": "later", "as_of": future}, format="json")
    assert later.status_code == 400 and "as_of" in later.json()["errors"]


def test_as_of_rebuilds_the_registry_from_the_history_tables(registry, investigator):
    moment = timezone.now()
    # After the moment: a new case, one deleted, one changed. None of it is in a release as of the moment.
    factories.ImplantationFactory(patient__centre=registry[0].patient.centre)
    Implantation.objects.get(pk=registry[3].pk).delete()
    changed = Implantation.objects.get(pk=registry[1].pk)
    indication_then = changed.indication
    changed.indication = "adjuvant" if indication_then != "adjuvant" else "unresectable_first_line"
    changed.save()

    release = releases.freeze_release("as-of", as_of=moment)
    assert release.source == Release.Source.HISTORY and release.cut == moment
    assert release.row_counts["implantations"] == 4
    with releases.reading(release):
        assert sorted(Implantation.objects.values_list("pk", flat=True)) == sorted(r.pk for r in registry)
        assert Implantation.objects.get(pk=changed.pk).indication == indication_then
    dataset = client_for(investigator).get("/api/v1/analysis-dataset/", {"release": release.name}).json()
    assert len(dataset) == 4


def test_codes_are_drawn_per_release(registry, investigator):
    first, second = releases.freeze_release("first"), releases.freeze_release("second")
    client = client_for(investigator)
    assert set(implantation_codes(client, release=first.name)).isdisjoint(implantation_codes(client, release="second"))
    assert first.codes_key != second.codes_key
    for row in client.get("/api/v1/releases/").json():
        assert "codes_key" not in row and "storage" not in row


def test_a_release_holds_no_pseudonym_nor_the_free_text_investigators_never_see(registry):
    Patient.objects.filter(pk=registry[0].patient_id).update(pseudonym="DUPONT-1957")
    release = releases.freeze_release("first")
    with releases.reading(release):
        assert set(Patient.objects.values_list("pseudonym", flat=True)) == {""}


def test_every_identifying_text_field_of_the_investigators_serializers_is_blanked_in_a_release():
    released = {label for label, _ in releases.RELEASED}
    checked = 0
    serializers, pending = [], [api_serializers.RegistrySerializer]
    while pending:
        children = pending.pop().__subclasses__()
        serializers += children
        pending += children
    for serializer in serializers:
        model = getattr(serializer.Meta, "model", None)
        if model is None or model._meta.label not in released:
            continue
        for name in getattr(serializer.Meta, "identifying_fields", ()):
            field = model._meta.get_field(name)
            if field.get_internal_type() in ("CharField", "TextField"):
                assert name in releases.BLANKED.get(model._meta.label, ()), f"{model._meta.label}.{name}"
                checked += 1
    assert checked >= 2


@pytest.fixture
def seeded(db):
    demo.seed_registry(3, 300, 5, reference_date=min(demo.REFERENCE_DATE, datetime.date.today()))
    return releases.freeze_release("seeded")


@pytest.fixture
def analyst(seeded):
    return factories.user_with_role(Role.INVESTIGATOR, username="analyst")


@pytest.fixture
def chief(seeded):
    return factories.user_with_role(Role.COORDINATOR, username="chief")


def dataset_of(client, release, fmt):
    response = client.get("/api/v1/analysis-dataset/", {"release": release.name, "format": fmt})
    assert response.status_code == 200, response.content
    return response


def test_the_dataset_has_one_row_per_implantation_at_the_cut(seeded, analyst):
    factories.ImplantationFactory()  # after the cut
    client = client_for(analyst)
    rows = dataset_of(client, seeded, "json").json()
    assert len(rows) == seeded.row_counts["implantations"] == Implantation.objects.count() - 1
    assert len({row["implantation"] for row in rows}) == len(rows)
    assert {row["implantation"] for row in rows} == set(implantation_codes(client, release=seeded.name, page_size=500))


def test_a_kaplan_meier_on_the_dataset_gives_the_survival_endpoints_median(seeded, analyst):
    client = client_for(analyst)
    table = pandas.read_csv(io.BytesIO(dataset_of(client, seeded, "csv").content))
    fitted = table.dropna(subset=["os_days"])
    km = KaplanMeierFitter().fit(
        fitted["os_days"], fitted["os_event"] == 1, entry=fitted["entry_day"] - outcomes.ENTRY_OFFSET
    )
    survival = client.get("/api/v1/stats/survival/", {"release": seeded.name, "endpoint": "overall"}).json()
    (overall,) = survival["groups"]
    assert overall["n"] == len(fitted)
    assert overall["median_days"] is not None
    assert km.median_survival_time_ == pytest.approx(overall["median_days"])


def test_the_dataset_agrees_with_the_pump_use_statistic(seeded, analyst):
    client = client_for(analyst)
    rows = dataset_of(client, seeded, "json").json()
    (overall,) = client.get("/api/v1/stats/pump-use/", {"release": seeded.name}).json()["groups"]
    assert overall["implantations"] == len(rows)
    assert overall["treated"] == sum(row["treated"] for row in rows)


def test_the_dataset_in_every_format_has_the_dictionarys_columns_and_booleans_0_1(seeded, analyst):
    client = client_for(analyst)
    csv_table = pandas.read_csv(io.BytesIO(dataset_of(client, seeded, "csv").content))
    parquet_table = pyarrow.parquet.read_table(io.BytesIO(dataset_of(client, seeded, "parquet").content))
    dictionary = client.get("/api/v1/analysis-dataset/dictionary/").json()
    assert list(csv_table.columns) == parquet_table.column_names == [c["column"] for c in dictionary]
    assert len(csv_table) == parquet_table.num_rows == seeded.row_counts["implantations"]
    for column in analysis_dataset.BOOLEAN_COLUMNS:
        assert set(csv_table[column].dropna().unique()) <= {0, 1}, column
    for entry in dictionary:
        assert entry["definition"] and entry["type"], entry["column"]


def test_no_calendar_date_reaches_an_investigator_from_a_release(seeded, analyst):
    client = client_for(analyst)
    bodies = [dataset_of(client, seeded, fmt).content.decode() for fmt in ("json", "csv")]
    bodies.append(client.get("/api/v1/releases/").content.decode())
    bodies.append(client.get("/api/v1/analysis-dataset/dictionary/", {"format": "csv"}).content.decode())
    for body in bodies:
        assert not ISO_DATE.search(body), ISO_DATE.search(body).group()
    (listed,) = client.get("/api/v1/releases/").json()
    assert set(listed) == {"name", "cut_year", "method_version", "checksum", "row_counts", "latest"}


def test_other_roles_may_not_read_the_dataset_the_coordinator_reads_it_live(seeded, chief, centre_lead_a):
    assert client_for(centre_lead_a).get("/api/v1/analysis-dataset/").status_code == 403
    rows = client_for(chief).get("/api/v1/analysis-dataset/").json()
    assert len(rows) == Implantation.objects.count()


def test_seed_demo_ends_by_freezing_a_first_release(db):
    reference = datetime.date(2026, 11, 1)
    assert demo.first_release_name(reference, 1) == "demo-2026-11"
    assert demo.first_release_name(reference, 3) == "demo-2026-11-seed-3"
    releases.freeze_release("demo-2026-11")
    assert demo.first_release_name(reference, 1) == "demo-2026-11-2"


@pytest.mark.parametrize("role", [Role.INVESTIGATOR])
def test_an_investigators_stats_csv_of_a_release_parses_into_named_columns(seeded, role):
    user = factories.user_with_role(role, username="reader")
    response = client_for(user).get(
        "/api/v1/stats/survival/", {"release": seeded.name, "format": "csv", "group_by": "centre"}
    )
    table = pandas.read_csv(io.StringIO(response.content.decode()))
    assert {"group", "n", "events", "median_days"} <= set(table.columns)
