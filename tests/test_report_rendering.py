"""The monthly benchmark report of one centre: numbers, HTML and a real PDF.

A small registry is built with the factories: the centre under test (HOME-C,
20 implantations, two surgeons) and four other centres, two of them so small
that their dots must not appear on the funnel plots. Expected figures are
worked out by hand from the data below.
"""

import datetime
import functools
import json
import re
import shutil
import subprocess

import pytest
from scipy.stats import binomtest

from registry.models import ComplicationType, Patient
from reports import benchmarks, charts, services
from reports.cohort import cohort
from reports.rendering import build_report_context, render_centre_report, render_copies, render_html, render_pdf

from . import factories
from .factories import days_after

HOME = "HOME-C"
OTHERS = {
    # code: (implantations, treated, catheter occlusions, pocket infections)
    "ZZALPHA": (30, 20, 6, 2),
    "ZZBETA": (25, 15, 6, 0),
    "ZZGAMMA": (3, 1, 1, 0),
    "ZZDELTA": (4, 2, 2, 0),
}
START = datetime.date(2024, 3, 1)
PERIOD = (datetime.date(2024, 12, 1), datetime.date(2024, 12, 31))
DATA_CUT = datetime.datetime(2025, 1, 15, 12, 0, tzinfo=datetime.UTC)
METHOD = "test-1"
HEADINGS = [
    # Issue 9's headings, verbatim, then the sections kept from before.
    "Summary",
    "Trends",
    "Case-mix adjusted comparison",
    "Learning curves",
    "Survival by indication",
    "Cases to review",
    "Methods",
    "Data completeness",
    "Implantations by indication",
    "Pump use and time to first dose",
    "Outcomes at fixed windows (not adjusted for case mix)",
    "Funnel plots",
    "Freedom from pump failure and overall survival",
    "Conversion to resection",
]


def wilson_text(x, n):
    ci = binomtest(x, n).proportion_ci(method="wilson")
    return f"{ci.low * 100:.1f}–{ci.high * 100:.1f}%"


@pytest.fixture
def registry(db):
    home = factories.CentreFactory(code=HOME, name="Home hospital")
    s1 = factories.SurgeonFactory(code="HOME-S1", centre=home, prior_pump_count=20)
    s2 = factories.SurgeonFactory(code="HOME-S2", centre=home, prior_pump_count=0)
    occlusion = ComplicationType.objects.get(code="catheter_occlusion")
    infection = ComplicationType.objects.get(code="pocket_infection")
    home_implants = []
    for i in range(20):
        implantation = factories.ImplantationFactory(
            patient__centre=home,
            surgeon=s1 if i % 2 == 0 else s2,
            implanted_on=days_after(15 * i, START),
            indication="unresectable_first_line" if i < 12 else "adjuvant",
        )
        home_implants.append(implantation)
        if i < 14:  # 14 of 20 pumps delivered a dose, 17 days after implantation
            factories.TreatmentFactory(implantation=implantation, given_on=days_after(17, implantation.implanted_on))
        if i in (1, 3, 5):  # catheter-related, within 90 days
            factories.ComplicationFactory(
                implantation=implantation, type=occlusion, onset_on=days_after(20, implantation.implanted_on)
            )
        if i == 0:
            factories.ComplicationFactory(
                implantation=implantation, onset_on=days_after(200, implantation.implanted_on)
            )
        if i < 5:  # last contact more than 6 months before the cut, alive
            factories.FollowUpFactory(implantation=implantation, contact_on=datetime.date(2024, 6, 15))
        elif i < 15:
            resected = i in (5, 6, 7)  # unresectable, converted
            factories.FollowUpFactory(
                implantation=implantation,
                contact_on=datetime.date(2025, 1, 5),
                resected=resected,
                resection_on=days_after(120, implantation.implanted_on) if resected else None,
            )
        # i >= 15: no follow-up at all
    for code, (n, treated, occlusions, infections) in OTHERS.items():
        centre = factories.CentreFactory(code=code, name=f"Hospital {code}")
        surgeon = factories.SurgeonFactory(code=f"{code}-S1", centre=centre)
        for j in range(n):
            implantation = factories.ImplantationFactory(
                patient__centre=centre, surgeon=surgeon, implanted_on=days_after(3 * j, START)
            )
            if j < treated:
                factories.TreatmentFactory(implantation=implantation)
            if j < occlusions:
                kind = infection if j < infections else occlusion
                factories.ComplicationFactory(
                    implantation=implantation, type=kind, onset_on=days_after(30, implantation.implanted_on)
                )
    return home_implants


def report_kwargs(centre_code=HOME):
    return {
        "centre_code": centre_code,
        "period_start": PERIOD[0],
        "period_end": PERIOD[1],
        "data_cut": DATA_CUT,
        "complication_types": list(
            ComplicationType.objects.order_by("name").values("code", "name", "category", "catheter_related")
        ),
        "method_version": METHOD,
    }


def pdf_text(pdf, tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    if shutil.which("pdftotext") is None:  # the report's text is checked on the real PDF, never skipped quietly
        pytest.fail("These tests need pdftotext (poppler-utils; `make test` installs it).")
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True).stdout
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    return text, int(re.search(r"Pages:\s+(\d+)", info).group(1))


def by_key(items, key):
    return next(item for item in items if item["key"] == key)


def test_report_pdf_shows_the_centres_figures_and_never_other_centres(registry, tmp_path):
    rows = cohort(as_of=None)
    context, html, pdf = render_centre_report(rows, **report_kwargs(), extra={"cases_to_review": []})

    # --- numbers, worked out by hand -------------------------------------------------
    assert context["period"]["label"] == "December 2024"
    pump = context["pump_use"]
    assert (pump["centre"]["events"], pump["centre"]["n"]) == (14, 20)
    assert pump["centre"]["rate"] == pytest.approx(0.70)
    assert pump["centre"]["median_days_to_first_dose"] == 17
    registry_treated = 14 + sum(t for _, t, _, _ in OTHERS.values())
    registry_n = 20 + sum(n for n, _, _, _ in OTHERS.values())
    assert (pump["registry"]["events"], pump["registry"]["n"]) == (registry_treated, registry_n)  # 52 / 82
    # Technical complications within 90 days: the three occlusions on day 20. The five pumps with no
    # follow-up leave the risk set on day 0, so the risk is 3 of the 15 followed, not 3 of 20.
    technical = by_key(context["complications"], "technical_90")
    assert (technical["centre"]["events"], technical["centre"]["n"]) == (3, 20)
    assert technical["centre"]["rate"] == pytest.approx(3 / 15)
    # The funnel counts the 16 implantations whose 90-day window had closed by the cut (up to 17 Oct 2024).
    assert (technical["closed_window"]["centre"]["events"], technical["closed_window"]["centre"]["n"]) == (3, 16)
    # Nobody at the centre is followed for a year yet: no 1-year figure, rather than a low one.
    catheter = by_key(context["complications"], "catheter_related")
    assert catheter["centre"]["events"] == 3 and catheter["centre"]["rate"] is None
    # None of the complications is severe (grade 2, no Clavien-Dindo).
    assert by_key(context["complications"], "any")["centre"]["events"] == 0
    # Other centres have 2 pocket infections: the registry figure would give them away.
    infection = by_key(context["complications"], "pocket_infection")
    assert infection["registry"]["suppressed"] and infection["registry"]["rate"] is None
    assert (infection["centre"]["events"], infection["centre"]["n"]) == (0, 20)
    assert by_key(context["conversion"], "unresectable")["centre"]["events"] == 3  # 3 / 12
    incomplete = by_key(context["completeness"]["measures"], "incomplete")
    assert (incomplete["centre"]["events"], incomplete["centre"]["n"]) == (10, 20)  # 5 stale + 5 without follow-up
    totals = context["implantations"]["totals"]["centre"]
    assert (totals["period"], totals["cumulative"]) == (1, 20)  # 11 Dec 2024 is the only one in December
    # Funnel: ZZGAMMA (3 implantations) and ZZDELTA (4) are too small to be shown.
    funnel = context["funnels"][0]
    assert (funnel["other_centres_shown"], funnel["other_centres_hidden"]) == (2, 2)
    assert sorted(p["n"] for p in funnel["points"] if not p["own"]) == [25, 30]
    surgeons = {s["code"]: s for s in context["cusum"]["surgeons"]}
    assert set(surgeons) == {"HOME-S1", "HOME-S2"}
    assert surgeons["HOME-S1"]["first_sequence"] == 21  # 20 pumps before the registry
    assert all(s["h"] > 0 for s in surgeons.values())

    # --- the context is plain JSON ---------------------------------------------------------
    assert json.loads(json.dumps(context, allow_nan=False)) == context

    # --- HTML: standalone, with its charts -------------------------------------------------
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "<link" not in html and "<script" not in html
    # Indications, 2 funnels, 2 surgeons (CUSUM and VLAD each), 2 Kaplan-Meier, and one observed/expected
    # funnel per case-mix outcome with an expected count at the centre.
    ratio_funnels = sum(1 for m in context["case_mix"]["comparisons"] if m["centre"]["expected"])
    assert ratio_funnels >= 1
    assert html.count('<img class="chart"') == 1 + 2 + 2 * 2 + 2 + ratio_funnels
    assert "<svg" not in html  # charts are images: no inline nodes for WeasyPrint's CSS cascade (issue 16)
    assert "<?xml" not in html

    # --- PDF -------------------------------------------------------------------------------
    assert pdf.startswith(b"%PDF")
    text, pages = pdf_text(pdf, tmp_path)
    flat = " ".join(text.split())
    assert pages >= 6
    for expected in [
        "HAI Registry — monthly benchmark report",
        HOME,
        "December 2024",
        f"Confidential: for centre {HOME}",
        "Method version",
        METHOD,
        "70.0%",  # pump-use rate 14/20
        wilson_text(14, 20),
        "63.4%",  # registry pump use 52/82
        "20.0%",  # technical complication within 90 days, 3 of 15 followed
        "3 / 20",
        "10 / 20",  # follow-up incomplete
        "50.0%",
        "3 / 12",  # conversion to resection, unresectable
        "25.0%",
        "suppr.",
        *HEADINGS,
    ]:
        assert expected in flat, expected
    # Chart labels are real text in the PDF (vector SVG, not pictures).
    for label in (
        "Surgeon HOME-S1",
        "Surgeon HOME-S2",
        "25th pump",
        "99.8% limits",
        "Other centres (anonymous)",
        "Implantations at the centre (volume)",
        "Months since implantation",
        "No pump failure",
    ):
        assert label in flat, label
    assert "Page 2 of" in flat

    # --- never another centre's code, surgeon or a patient's pseudonym ---------------------
    stored = json.dumps(context)
    pseudonyms = list(Patient.objects.values_list("pseudonym", flat=True))
    assert len(pseudonyms) == 82
    for secret in [*OTHERS, *(f"{code}-S1" for code in OTHERS), *pseudonyms]:
        assert secret not in html, secret
        assert secret not in text, secret
        assert secret not in stored, secret


def test_both_copies_are_drawn_with_one_set_of_charts(registry, monkeypatch):
    """Issue 16: the stored and the emailed copy are the pages render_stored_html and render_email_html give,
    the charts drawn once for the two."""
    context = build_report_context(cohort(as_of=None), **report_kwargs())
    context["cases_to_review"] = [{"title": "Overdue", "columns": ["Patient"], "rows": [["PT-SECRET-1"]]}]
    url = "https://hai.example.org/api/v1/reports/7/pdf/"
    expected = (services.render_stored_html(context), services.render_email_html(context, stored_url=url))
    drawn = []
    real = charts._svg
    monkeypatch.setattr(charts, "_svg", lambda fig, prefix: drawn.append(prefix) or real(fig, prefix))
    assert render_copies(context, stored_url=url) == expected
    assert drawn and len(drawn) == len(set(drawn)) == expected[0].count('<img class="chart"')
    assert "PT-SECRET-1" in expected[0] and "PT-SECRET-1" not in expected[1]


def test_the_registry_side_of_each_part_is_computed_once_per_run(registry, monkeypatch):
    """Issue 16: the registry's figures per quarter, window and indication are the same for every centre of a
    run; the next centre's report reuses them and recomputes only its own."""
    from reports import rendering

    rows = cohort(as_of=None)
    rendering._registry.__init__()  # a fresh worker
    home = build_report_context(rows, **report_kwargs())
    alpha = build_report_context(rows, **report_kwargs(centre_code="ZZALPHA"))
    seen = []
    for name in ("survival", "pump_use", "cumulative_incidence", "mortality"):
        real = getattr(benchmarks, name)

        @functools.wraps(real)  # the memo knows a function by its name
        def counted(subset, *args, real=real, **kwargs):
            seen.append({r.centre_code for r in subset})
            return real(subset, *args, **kwargs)

        monkeypatch.setattr(benchmarks, name, counted)
    assert build_report_context(rows, **report_kwargs()) == home
    # Only the centre's own rows are computed again: no registry-wide or registry-part figure.
    assert seen and all(centres <= {HOME} for centres in seen)
    # And what is reused is what a fresh worker computes.
    monkeypatch.undo()
    rendering._registry.__init__()
    assert build_report_context(rows, **report_kwargs(centre_code="ZZALPHA")) == alpha


def test_rendering_is_deterministic(registry):
    rows = cohort(as_of=None)
    first = build_report_context(rows, **report_kwargs())
    second = build_report_context(list(reversed(rows)), **report_kwargs())
    assert first == second
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    html = render_html(first)
    assert render_html(second) == html
    # A stored context (after a JSON round trip) draws the same report, and the same PDF bytes.
    assert render_html(json.loads(json.dumps(first))) == html
    assert render_pdf(html) == render_pdf(render_html(second))


def test_a_centre_without_implantations_still_gets_a_report(registry):
    factories.CentreFactory(code="NEWCOMER")
    context = build_report_context(cohort(as_of=None), **report_kwargs("NEWCOMER"))
    assert context["pump_use"]["centre"] == {
        "events": 0,
        "n": 0,
        "rate": None,
        "ci": None,
        "median_days_to_first_dose": None,
    }
    assert context["cusum"]["surgeons"] == []
    html = render_html(context)
    assert "NEWCOMER" in html and HOME not in html


def test_registry_figures_reused_across_centres_match_a_fresh_build(registry):
    """A worker reuses registry-wide figures for the next centre of the same run; nothing may leak between centres."""
    rows = cohort(as_of=None)
    other = next(r.centre_code for r in rows if r.centre_code != HOME)
    build_report_context(rows, **report_kwargs(other))  # warms the per-run memo with the same rows object
    reused = build_report_context(rows, **report_kwargs())
    assert reused == build_report_context(list(rows), **report_kwargs())  # a new list: computed afresh


def test_registry_survival_curve_is_the_registry_kaplan_meier_at_each_point(db):
    """The registry curve is drawn from the coarse 30-day table as a step function, like the centre's own
    curve: every point must be the registry's Kaplan-Meier survival at the point's day.  (Labelling each block
    with its start while carrying the survival at its end drew the registry one block early, looking worse.)"""
    home = factories.CentreFactory(code="HOME-K")
    other = factories.CentreFactory(code="ZZOTHER")
    # Others: 40 implantations, deaths every 5 days from day 5 to day 120 (6 per block), 16 alive at day 300.
    for centre, count, deaths in ((home, 10, []), (other, 40, list(range(5, 121, 5)))):
        for j in range(count):
            implantation = factories.ImplantationFactory(patient__centre=centre, implanted_on=START)
            died = deaths[j] if j < len(deaths) else None
            factories.FollowUpFactory(
                implantation=implantation,
                contact_on=days_after(died or 300, START),
                vital_status="dead" if died else "alive",
                died_on=days_after(died, START) if died else None,
            )
    rows = cohort(as_of=None)
    registry = build_report_context(rows, **report_kwargs("HOME-K"))["survival"]["overall"]["registry"]
    assert not registry["suppressed"]
    [fit] = benchmarks.survival(rows, "overall", benchmarks.Grouping())

    def km(day):
        before = [r["survival"] for r in fit["table"] if r["day"] <= day]
        return before[-1] if before else 1.0

    days = [point["day"] for point in registry["curve"]]
    assert days[:4] == [30, 60, 90, 120] and all(day % 30 == 0 for day in days)
    assert [point["survival"] for point in registry["curve"]] == pytest.approx([km(day) for day in days])
    assert km(30) < 1.0  # the check has teeth: 6 deaths by day 30


def test_completeness_shows_clarks_c_over_the_centres_and_the_registrys_implantations(registry):
    """Clark's C (Lancet 2002;359:1309): follow-up observed over follow-up possible by the cut, per implantation."""
    rows = cohort(as_of=None)
    context = build_report_context(rows, **report_kwargs())
    cut = DATA_CUT.date()

    def by_hand(members):
        observed = potential = 0
        for r in members:
            end = r.died_on or r.last_contact_on or r.implanted_on
            observed += (min(end, cut) - r.implanted_on).days
            potential += ((r.died_on if r.died_on else cut) - r.implanted_on).days
        return observed / potential

    own = [r for r in rows if r.centre_code == HOME]
    figures = context["completeness"]["clark_c"]
    assert figures["centre"] == pytest.approx(by_hand(own))
    assert figures["registry"] == pytest.approx(by_hand(rows))
    assert 0 < figures["centre"] < 1  # the home centre has patients lost to follow-up
    html = render_html(context)
    clark = re.search(r'<p id="clark-c">.*?</p>', html, re.S).group(0)
    assert f"{figures['centre']:.2f}" in clark and f"{figures['registry']:.2f}" in clark
