"""Survival tables reach anyone but the coordinator coarsened (reports.disclosure, ``suppress_survival``).

A shown curve is published on a 30-day grid (never the days on which single patients died or were last
seen), numbers at risk of 1-4 are hidden, and so are block events of 1-4, together with a complementary
block so that no hidden block is the group's events minus the shown ones. The coordinator gets the exact
table. Checked through the API for every non-coordinator role, overall survival and freedom from pump failure
(1 − Aalen-Johansen). The report's registry curves: tests/test_report_small_numbers.py.
"""

import copy

import pytest
from rest_framework.test import APIClient

from registry.models import ComplicationType
from reports.disclosure import SURVIVAL_TABLE_STEP_DAYS, THRESHOLD
from sites.models import Role

from . import factories
from .api_world import built_once
from .factories import days_after

# Events on days 10, 20, 25 | 40, 50 | 65-85 | 95-115 (blocks of 3, 2, 5 and 5), then 5 followed to day 130
# and 3 to day 200: the last blocks start with 3 at risk.
EVENT_DAYS = [10, 20, 25, 40, 50, 65, 70, 75, 80, 85, 95, 100, 105, 110, 115]
CENSORED_DAYS = [130] * 5 + [200] * 3
# What a non-coordinator reads of overall survival: (day, at risk, events). Blocks of 3 and 2 events are hidden,
# with the next block (5) as their complement; 3 at risk from day 150 on are hidden.
COARSE_OVERALL = [
    (0, 23, 0),
    (30, 23, None),
    (60, 20, None),
    (90, 18, None),
    (120, 13, 5),
    (150, 8, 0),
    (180, None, 0),
    (210, None, 0),
]
NON_COORDINATORS = ["investigator", "data manager", "centre lead"]


def build():
    centre = factories.CentreFactory(code="CENTRE-A")
    surgeon = factories.SurgeonFactory(centre=centre)
    occlusion = ComplicationType.objects.get(code="catheter_occlusion")
    for day in EVENT_DAYS:
        # Dies on ``day`` (overall survival); the pump failed on the same day (pump failure, which the death
        # then does not compete with).
        implantation = factories.ImplantationFactory(
            patient__centre=centre, surgeon=surgeon, implanted_on=days_after(0)
        )
        factories.ComplicationFactory(
            implantation=implantation, type=occlusion, onset_on=days_after(day), pump_lost=True
        )
        factories.FollowUpFactory(
            implantation=implantation, contact_on=days_after(day), vital_status="dead", died_on=days_after(day)
        )
    for day in CENSORED_DAYS:
        implantation = factories.ImplantationFactory(
            patient__centre=centre, surgeon=surgeon, implanted_on=days_after(0)
        )
        factories.FollowUpFactory(implantation=implantation, contact_on=days_after(day))
    return {
        "coordinator": factories.user_with_role(Role.COORDINATOR, username="coordinator"),
        "investigator": factories.user_with_role(Role.INVESTIGATOR, username="investigator"),
        "data manager": factories.user_with_role(Role.DATA_MANAGER, centre, username="dm-a"),
        "centre lead": factories.user_with_role(Role.CENTRE_LEAD, centre, username="lead-a"),
    }


registry_once = built_once(build)


@pytest.fixture
def users(registry_once, db):
    return copy.deepcopy(registry_once)


def curve(user, endpoint):
    client = APIClient()
    client.force_authenticate(user)
    response = client.get("/api/v1/stats/survival/", {"endpoint": endpoint})
    assert response.status_code == 200, response.content
    [group] = response.json()["groups"]
    return group


def small(value):
    return value is not None and 0 < value < THRESHOLD


@pytest.mark.parametrize("endpoint", ["overall", "pump_failure"])
@pytest.mark.parametrize("role", NON_COORDINATORS)
def test_a_shown_curve_is_coarsened_for_everyone_but_the_coordinator(users, role, endpoint):
    group = curve(users[role], endpoint)
    assert group["suppressed"] is False and (group["n"], group["events"]) == (23, 15)
    table = group["table"]
    # The time grid: 30-day block ends from day 0, never a patient's own day.
    assert [row["day"] for row in table] == [k * SURVIVAL_TABLE_STEP_DAYS for k in range(len(table))]
    # Small numbers: no number at risk and no block's events of 1-4.
    assert not [row for row in table if small(row["at_risk"]) or small(row["events"])]
    assert any(row["at_risk"] is None for row in table)
    # A hidden block is never the group's events minus the shown blocks: two at least are hidden.
    hidden = [row for row in table[1:] if row["events"] is None]
    assert len(hidden) != 1 and len(hidden) >= 2
    assert sum(row["events"] for row in table[1:] if row["events"] is not None) < group["events"]


@pytest.mark.parametrize("role", NON_COORDINATORS)
def test_the_coarse_overall_survival_table(users, role):
    table = curve(users[role], "overall")["table"]
    assert [(row["day"], row["at_risk"], row["events"]) for row in table] == COARSE_OVERALL


def test_the_coordinator_gets_the_exact_table(users):
    group = curve(users["coordinator"], "overall")
    assert "suppressed" not in group
    table = group["table"]
    assert [row["day"] for row in table if row["events"]] == EVENT_DAYS
    assert [(row["day"], row["at_risk"]) for row in table][-1] == (200, 3)
