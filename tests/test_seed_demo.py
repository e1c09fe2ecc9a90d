"""The demo seeder: deterministic, valid row by row, and its rates follow the brief's published figures."""

import datetime
import random
import statistics

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Exists, OuterRef

from registry import demo, refills
from registry.models import (
    Complication,
    ComplicationType,
    FollowUp,
    Implantation,
    LiverTest,
    Patient,
    PerfusionCheck,
    PumpModel,
    Readmission,
    SystemicTherapyLine,
    SystemicToxicity,
    Treatment,
)
from registry.rules import today
from registry.selectors import readmission_rates
from sites.models import Centre, Membership, ReportRecipient, Role, Surgeon

CENTRES, IMPLANTATIONS, SEED = 8, 4000, 7
REFERENCE = min(demo.REFERENCE_DATE, today())
UNRESECTABLE = ("unresectable_first_line", "unresectable_after_progression", "unresectable_icca")


def _remove_demo_data():
    demo.flush_registry()
    get_user_model().objects.filter(username__in=["coordinator", "investigator"]).delete()
    get_user_model().objects.filter(username__regex=r"^(dm|lead)-").delete()


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """One registry of 4,000 implantations, committed for this module and removed afterwards."""
    with django_db_blocker.unblock():
        _remove_demo_data()
        counts = demo.seed_registry(CENTRES, IMPLANTATIONS, SEED, reference_date=REFERENCE)
        yield counts
        _remove_demo_data()


@pytest.fixture
def derived(seeded, db):
    """Implantation rows with the registry's own derived values (treated, first dose, surgeon sequence)."""
    has_complication = Complication.objects.filter(implantation=OuterRef("pk"))
    return list(
        Implantation.objects.with_derived()
        .annotate(
            any_complication=Exists(has_complication),
            pump_complication=Exists(has_complication.filter(related_to_pump=True)),
            biliary_sclerosis=Exists(has_complication.filter(type__code="biliary_sclerosis")),
            resected=Exists(FollowUp.objects.filter(implantation=OuterRef("pk"), resected=True)),
        )
        .values(
            "id",
            "patient__centre_id",
            "indication",
            "implanted_on",
            "never_treated_reason",
            "derived_treated",
            "derived_first_dose_on",
            "derived_surgeon_sequence",
            "any_complication",
            "pump_complication",
            "biliary_sclerosis",
            "resected",
        )
    )


def _share(rows, key):
    return sum(1 for r in rows if r[key]) / len(rows)


def test_counts_match_the_options(seeded, db):
    assert Centre.objects.count() == CENTRES
    assert Patient.objects.count() == Implantation.objects.count() == IMPLANTATIONS
    assert seeded["registry.Implantation"] == IMPLANTATIONS
    children = (Treatment, Complication, LiverTest, PerfusionCheck, SystemicTherapyLine, FollowUp)
    for model in (Surgeon, ReportRecipient, *children):
        assert seeded[model._meta.label] == model.objects.count() > 0
    # Every centre has implantations, surgeons and report recipients; volumes differ a lot.
    volumes = [Implantation.objects.filter(patient__centre=c).count() for c in Centre.objects.all()]
    assert min(volumes) >= 1 and max(volumes) >= 3 * min(volumes)
    assert not Centre.objects.filter(surgeons__isnull=True).exists()
    assert not Centre.objects.filter(report_recipients__isnull=True).exists()
    priors = list(Surgeon.objects.values_list("prior_pump_count", flat=True))
    assert 0 in priors and max(priors) > 25
    # Treated implantations get a manageable number of cycles; 1-3 follow-ups each.
    treated = Implantation.objects.filter(never_treated_reason="").count()
    assert 3 <= Treatment.objects.given().count() / treated <= 6
    assert 1 <= FollowUp.objects.count() / IMPLANTATIONS <= 3


def test_bulk_seed_writes_no_history(seeded, db):
    assert Implantation.history.count() == 0
    assert Treatment.history.count() == 0


def test_never_treated_share_and_reason_go_with_no_dose(derived):
    # The reason is recorded exactly when no dose was given (held cycles are not doses).
    assert all(bool(r["never_treated_reason"]) != r["derived_treated"] for r in derived)
    share = 1 - _share(derived, "derived_treated")
    assert 0.14 <= share <= 0.21  # brief: ~15-20%
    by_centre = {}
    for r in derived:
        by_centre.setdefault(r["patient__centre_id"], []).append(not r["derived_treated"])
    shares = [sum(v) / len(v) for v in by_centre.values()]
    assert max(shares) >= 0.25 and max(shares) <= 0.40  # "up to 34% in some trials"
    assert min(shares) <= 0.15


def test_biliary_sclerosis_is_more_frequent_after_adjuvant_than_unresectable(derived):
    adjuvant = [r for r in derived if r["indication"] == "adjuvant"]
    unresectable = [r for r in derived if r["indication"] in UNRESECTABLE]
    adj, unres = _share(adjuvant, "biliary_sclerosis"), _share(unresectable, "biliary_sclerosis")
    assert adj > unres
    assert 0.03 <= adj <= 0.085  # brief: 5.5%
    assert 0.008 <= unres <= 0.035  # brief: 2.0%


def test_pump_complications_about_one_in_five(derived):
    assert 0.15 <= _share(derived, "pump_complication") <= 0.26  # brief: ~20%


def test_learning_curve_fewer_complications_from_the_25th_pump(derived):
    early = [r for r in derived if r["derived_surgeon_sequence"] < 25]
    late = [r for r in derived if r["derived_surgeon_sequence"] >= 25]
    assert len(early) >= 150 and len(late) >= 1000
    p_early, p_late = _share(early, "any_complication"), _share(late, "any_complication")
    odds_ratio = (p_early / (1 - p_early)) / (p_late / (1 - p_late))
    assert p_early > p_late
    assert odds_ratio >= 1.5


def test_surgeon_sequence_starts_at_the_prior_pump_count(seeded, db):
    surgeon = Surgeon.objects.filter(implantations__isnull=False).order_by("code").first()
    sequences = sorted(
        Implantation.objects.with_derived().filter(surgeon=surgeon).values_list("derived_surgeon_sequence", flat=True)
    )
    assert sequences == list(range(surgeon.prior_pump_count + 1, surgeon.prior_pump_count + 1 + len(sequences)))


def test_median_days_to_first_dose(derived):
    days = [(r["derived_first_dose_on"] - r["implanted_on"]).days for r in derived if r["derived_treated"]]
    assert 16 <= statistics.median(days) <= 19  # brief: 16-19 days
    assert min(days) >= 0


def test_conversion_to_resection_of_unresectable_disease(derived):
    unresectable = [r for r in derived if r["indication"] in UNRESECTABLE]
    assert 0.25 <= _share(unresectable, "resected") <= 0.50  # brief: 25-50%


def test_overall_survival_median_about_two_years(seeded, db):
    """Kaplan-Meier from implantation to death, censored at the last contact."""
    outcome = {}  # implantation -> (days, died)
    for implantation_id, implanted_on, contact_on, died_on in FollowUp.objects.values_list(
        "implantation_id", "implantation__implanted_on", "contact_on", "died_on"
    ):
        days, died = outcome.get(implantation_id, (0, 0))
        if died_on:
            outcome[implantation_id] = ((died_on - implanted_on).days, 1)
        elif not died:
            outcome[implantation_id] = (max(days, (contact_on - implanted_on).days), 0)
    assert len(outcome) == IMPLANTATIONS
    times = sorted(outcome.values())
    at_risk, survival, median, i = len(times), 1.0, None, 0
    while i < len(times) and median is None:
        day, deaths, leaving = times[i][0], 0, 0
        while i < len(times) and times[i][0] == day:
            deaths += times[i][1]
            leaving += 1
            i += 1
        survival *= 1 - deaths / at_risk
        at_risk -= leaving
        if survival <= 0.5:
            median = day
    assert median is not None
    assert 20 <= median / demo.MONTH <= 32


def test_a_sample_of_every_table_passes_full_clean(seeded, db):
    rng = random.Random(0)
    models = [
        Centre,
        Surgeon,
        ReportRecipient,
        Membership,
        Patient,
        Implantation,
        Treatment,
        Complication,
        LiverTest,
        PerfusionCheck,
        SystemicTherapyLine,
        FollowUp,
        PumpModel,
        SystemicToxicity,
        Readmission,
    ]
    for model in models:
        pks = sorted(model.objects.values_list("pk", flat=True))
        sample = rng.sample(pks, min(len(pks), 40))
        # The rows with the most rules: deaths (checked against every other record of the
        # patient), reduced or held cycles, never-treated implantations.
        special = {
            FollowUp: FollowUp.objects.filter(died_on__isnull=False),
            # Reduced or held cycles, and refills whose returned volume is checked against the previous fill.
            Treatment: Treatment.objects.exclude(dose_change="full").union(
                Treatment.objects.filter(returned_volume_ml__isnull=False, liver_test__isnull=False)
            ),
            Implantation: Implantation.objects.exclude(never_treated_reason=""),
        }.get(model)
        if special is not None:
            sample += list(special.order_by("pk").values_list("pk", flat=True)[:40])
        rows = list(model.objects.filter(pk__in=sample))
        assert rows
        for row in rows:
            row.full_clean()


def test_nothing_is_dated_after_the_reference_date_or_a_death(seeded, db):
    assert not Implantation.objects.filter(implanted_on__gt=REFERENCE).exists()
    assert not FollowUp.objects.filter(contact_on__gt=REFERENCE).exists()
    deaths = dict(FollowUp.objects.filter(died_on__isnull=False).values_list("implantation__patient_id", "died_on"))
    assert len(deaths) > IMPLANTATIONS // 4
    dated = (
        (Treatment, "given_on"),
        (Complication, "onset_on"),
        (LiverTest, "measured_on"),
        (PerfusionCheck, "checked_on"),
    )
    for model, field in dated:
        for patient_id, when in model.objects.values_list("implantation__patient_id", field):
            assert when <= REFERENCE
            assert patient_id not in deaths or when <= deaths[patient_id], (model.__name__, patient_id)
    for patient_id, started_on in SystemicTherapyLine.objects.values_list("patient_id", "started_on"):
        assert patient_id not in deaths or started_on <= deaths[patient_id]


def test_entry_times_are_seeded_so_report_data_cuts_see_the_registry_grow(seeded, db):
    latest_entry = datetime.datetime.combine(REFERENCE, datetime.time(23, 59), tzinfo=datetime.UTC)
    entered = dict(Implantation.objects.values_list("pk", "created_at"))
    assert max(entered.values()) <= latest_entry
    for model in (Treatment, Complication, LiverTest, PerfusionCheck, FollowUp):
        for implantation_id, created_at in model.objects.values_list("implantation_id", "created_at"):
            assert entered[implantation_id] <= created_at <= latest_entry
    # Entered a few days after the event, so a data cut a year back holds a part of the registry.
    cut = latest_entry - datetime.timedelta(days=365)
    assert 0 < Implantation.objects.filter(created_at__lte=cut).count() < IMPLANTATIONS
    assert all(
        (created_at.date() - implanted_on).days <= 90
        for implanted_on, created_at in Implantation.objects.values_list("implanted_on", "created_at")
    )


def test_demo_users_have_their_roles(seeded, db):
    User = get_user_model()
    first_centre = Centre.objects.get(code=seeded["users"][2][2])
    expected = {
        "coordinator": (Role.COORDINATOR, None),
        "investigator": (Role.INVESTIGATOR, None),
        f"dm-{first_centre.code.lower()}": (Role.DATA_MANAGER, first_centre.pk),
        f"lead-{first_centre.code.lower()}": (Role.CENTRE_LEAD, first_centre.pk),
    }
    for username, (role, centre_id) in expected.items():
        user = User.objects.get(username=username)
        assert user.check_password(demo.DEMO_PASSWORD)
        assert list(Membership.objects.filter(user=user).values_list("role", "centre_id")) == [(role, centre_id)]
    assert {u for u, _, _ in seeded["users"]} >= set(expected)


def test_same_seed_same_data_other_seed_other_data(seeded, db):
    # Runs inside this test's transaction: the module's registry comes back afterwards.
    demo.flush_registry()
    demo.seed_registry(3, 300, 11, reference_date=REFERENCE)
    first = demo.registry_digest()
    demo.flush_registry()
    demo.seed_registry(3, 300, 11, reference_date=REFERENCE, batch_size=97)  # batching does not change the data
    assert demo.registry_digest() == first
    demo.flush_registry()
    demo.seed_registry(3, 300, 11, reference_date=REFERENCE, copy=False)  # nor COPY versus bulk_create
    assert demo.registry_digest() == first
    demo.flush_registry()
    demo.seed_registry(3, 300, 12, reference_date=REFERENCE)
    assert demo.registry_digest() != first


def test_command_refuses_existing_data_without_flush(seeded, db, capsys, settings):
    settings.DEBUG = True
    with pytest.raises(CommandError, match="--flush"):
        call_command("seed_demo", "--centres", "2", "--implantations", "20")
    call_command("seed_demo", "--centres", "2", "--implantations", "20", "--flush", "--reference-date", str(REFERENCE))
    out = capsys.readouterr().out
    assert "demo-password-1" in out and "coordinator" in out
    assert Implantation.objects.count() == 20 + 1  # and the import templates' example (demo.IMPORT_EXAMPLE_NAMES)
    assert ComplicationType.objects.filter(code="biliary_sclerosis").exists()  # vocabulary survives a flush


def test_if_empty_leaves_a_filled_database_alone(seeded, db, capsys):
    call_command("seed_demo", "--centres", "2", "--implantations", "20", "--if-empty")
    assert "not seeding" in capsys.readouterr().out
    assert Implantation.objects.count() == IMPLANTATIONS


def test_reference_date_in_the_future_is_refused(db):
    with pytest.raises(CommandError, match="future"):
        call_command("seed_demo", "--implantations", "5", "--reference-date", str(today() + datetime.timedelta(days=1)))


def test_flush_refuses_to_run_with_debug_off(seeded, db, settings):
    settings.DEBUG = False
    before = (Implantation.objects.count(), Implantation.history.count())
    with pytest.raises(CommandError, match="only with DEBUG on"):
        call_command("seed_demo", "--centres", "2", "--implantations", "20", "--flush")
    assert (Implantation.objects.count(), Implantation.history.count()) == before


# --- the richer record (issue 14) ------------------------------------------------------------


def test_every_pump_has_a_catalogue_model_of_its_kind_and_no_port_has_one(seeded, db):
    pumps = Implantation.objects.exclude(device="arterial_port")
    assert not pumps.filter(pump_model__isnull=True).exists()
    for device in ("constant_flow_pump", "programmable_pump"):
        kinds = set(pumps.filter(device=device).values_list("pump_model__kind", flat=True))
        assert kinds == {device}
    assert not Implantation.objects.filter(device="arterial_port", pump_model__isnull=False).exists()


def test_every_reduced_or_held_cycle_has_a_coded_reason(seeded, db):
    changed = Treatment.objects.exclude(dose_change="full")
    assert changed.count() > 100
    assert not changed.filter(hold_reason="").exists()
    assert not Treatment.objects.filter(dose_change="full").exclude(hold_reason="").exists()
    # Reductions during biliary sclerosis are coded as such, not only as a liver-test rise.
    assert changed.filter(hold_reason="biliary_sclerosis").exists()


def test_fudr_refills_give_their_stated_dose_within_ten_percent(seeded, db):
    fudr = (
        Treatment.objects.filter(drug="fudr", dose_unit="mg/kg/day", drug_concentration_mg_per_ml__isnull=False)
        .select_related("implantation__pump_model")
        .order_by("pk")
    )
    checked = measured = 0
    for treatment in fudr[:400]:
        computed, flow, basis = refills.dose_check(treatment)
        gap = refills.dose_difference(treatment.dose, computed)
        assert gap <= refills.DOSE_TOLERANCE, (treatment.pk, treatment.dose, computed, flow, basis)
        checked += 1
        measured += basis == "measured"
    assert checked >= 300
    assert measured > checked / 2  # most refills have a previous one: the flow is measured from the volumes


def test_measured_flow_is_close_to_the_pumps_nominal_rate(seeded, db):
    flows = []
    for treatment in (
        refills.with_previous_refill(Treatment.objects.filter(implantation__device="constant_flow_pump"))
        .select_related("implantation__pump_model")
        .order_by("pk")[:2000]
    ):
        flow = refills.flow_of_row(treatment)
        if flow is not None:
            flows.append(flow / treatment.implantation.pump_model.nominal_flow_ml_per_day)
    assert len(flows) > 500
    assert 0.95 <= statistics.median(flows) <= 1.05


def test_refills_link_their_own_liver_tests(seeded, db):
    linked = Treatment.objects.filter(liver_test__isnull=False)
    assert linked.count() > 0.9 * Treatment.objects.filter(implantation__never_treated_reason="").count()
    for treatment in linked.select_related("liver_test").order_by("pk")[:500]:
        assert treatment.liver_test.implantation_id == treatment.implantation_id
        assert treatment.liver_test.measured_on == treatment.given_on


def test_grade_3_to_4_systemic_toxicity_at_the_published_rates(derived):
    """seeds/000: grade 3-4 neutropenia 22.2% and neurotoxicity 9.8% (HAI with systemic chemotherapy)."""
    treated = {row["id"] for row in derived if row["derived_treated"]}
    for term, published in (("neutropenia", 0.222), ("neuropathy", 0.098)):
        severe = set(
            SystemicToxicity.objects.filter(term=term, grade__in=(3, 4)).values_list("implantation_id", flat=True)
        )
        assert severe <= treated
        assert published - 0.03 <= len(severe) / len(treated) <= published + 0.02, term


def test_hepatic_artery_variants_at_about_michels_prevalence(seeded, db):
    n = Implantation.objects.count()
    for field, prevalence in (("replaced_left_hepatic_artery", 0.10), ("replaced_right_hepatic_artery", 0.11)):
        share = Implantation.objects.exclude(**{field: ""}).count() / n
        assert prevalence - 0.02 <= share <= prevalence + 0.02, field
    assert Implantation.objects.filter(replaced_left_hepatic_artery="ligated").exists()


def test_perfusion_checks_have_their_modality_and_findings(seeded, db):
    assert not PerfusionCheck.objects.filter(modality="").exists()
    assert not PerfusionCheck.objects.filter(method="maa_scintigraphy").exclude(modality="maa_spect").exists()
    positive = PerfusionCheck.objects.filter(extrahepatic_perfusion=True)
    assert positive.exists()
    assert not positive.filter(extrahepatic_sites=[]).exists()
    assert not PerfusionCheck.objects.filter(extrahepatic_perfusion=False).exclude(extrahepatic_sites=[]).exists()


def test_case_mix_items_are_filled_or_known_missing(seeded, db):
    patients = Patient.objects.all()
    n = patients.count()
    assert patients.filter(ecog__isnull=False).count() / n > 0.9
    assert patients.filter(cea_ng_per_ml__isnull=False).count() / n > 0.85
    assert patients.filter(ecog__isnull=True, ecog_missing="").exists()  # not yet entered
    assert patients.filter(ecog__isnull=True).exclude(ecog_missing="").exists()  # known missing
    assert patients.filter(braf_status="v600e").exists() and patients.filter(msi_status="msi_high").exists()
    with_sites = patients.exclude(extrahepatic_sites=[])
    assert with_sites.exists() and not with_sites.exclude(extrahepatic_disease=True).exists()


def test_readmissions_and_trials(seeded, db):
    rates = readmission_rates(Implantation.objects.all(), data_cut=REFERENCE)
    events, n = rates["readmission_30d"]
    assert 0.03 < events / n < 0.3
    assert rates["reoperation_90d"][0] > 0
    in_trial = Implantation.objects.exclude(trial="")
    assert 0 < in_trial.count() < 0.2 * IMPLANTATIONS
    extrahepatic = Implantation.objects.filter(patient__extrahepatic_disease=True)
    assert extrahepatic.exclude(trial="").exists() and extrahepatic.filter(trial="").exists()


def test_flush_takes_the_demo_pump_catalogue_with_it(seeded, db):
    # Runs inside this test's transaction: the module's registry comes back afterwards.
    coordinators_own = PumpModel.objects.create(
        name="Centre's pump", manufacturer="Other", reservoir_volume_ml=30, nominal_flow_ml_per_day=1
    )
    demo.flush_registry()
    assert list(PumpModel.objects.all()) == [coordinators_own]
