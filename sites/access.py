"""Who may see and change what. Every permission decision is made here.

Roles come from ``sites.Membership``. The answers are cached on the user
object for the length of a request.
"""

from dataclasses import dataclass, field

ALL_CENTRES = object()  # sentinel: no centre restriction

# Role names are repeated here (not imported from models) to avoid an import
# cycle: models -> querysets -> access.
COORDINATOR = "coordinator"
INVESTIGATOR = "investigator"
DATA_MANAGER = "data_manager"
CENTRE_LEAD = "centre_lead"
ROLES = (COORDINATOR, INVESTIGATOR, DATA_MANAGER, CENTRE_LEAD)
# Set on a user object (for one request) to make it act in that one role only; see access_for.
ACTING_ROLE_ATTRIBUTE = "_registry_role"


@dataclass(frozen=True)
class Access:
    coordinator: bool = False
    investigator: bool = False
    managed_centre_ids: frozenset = field(default_factory=frozenset)
    led_centre_ids: frozenset = field(default_factory=frozenset)

    @property
    def own_centre_ids(self):
        return self.managed_centre_ids | self.led_centre_ids


NO_ACCESS = Access()


def access_for(user):
    if user is None or not user.is_authenticated or not user.is_active:
        return NO_ACCESS
    cached = getattr(user, "_registry_access", None)
    if cached is not None:
        return cached
    from .models import Membership

    rows = list(Membership.objects.filter(user=user).values_list("role", "centre_id"))
    # A request that acts in one role (an API token created for it, api.authentication) counts only
    # that role's memberships: a superuser acting as an investigator is an investigator, not the coordinator.
    acting_as = getattr(user, ACTING_ROLE_ATTRIBUTE, None)
    if acting_as is not None:
        rows = [(role, centre) for role, centre in rows if role == acting_as]
    superuser = user.is_superuser and acting_as in (None, COORDINATOR)
    result = Access(
        coordinator=superuser or any(role == COORDINATOR for role, _ in rows),
        investigator=any(role == INVESTIGATOR for role, _ in rows),
        managed_centre_ids=frozenset(c for role, c in rows if role == DATA_MANAGER),
        led_centre_ids=frozenset(c for role, c in rows if role == CENTRE_LEAD),
    )
    user._registry_access = result
    return result


def forget(user):
    """Drop the cached answer, e.g. after memberships change."""
    user.__dict__.pop("_registry_access", None)


def is_coordinator(user):
    return access_for(user).coordinator


def must_deidentify(user):
    """Investigators read every centre, but only de-identified (pseudonyms, birth year, no free text).

    A user who is an investigator and also a centre's data manager or lead is
    still shown de-identified data through the API: one rule, no mixed views.
    """
    a = access_for(user)
    return a.investigator and not a.coordinator


def visible_centre_ids(user):
    """Centres whose identifiable rows the user may read."""
    a = access_for(user)
    if a.coordinator:
        return ALL_CENTRES
    return a.own_centre_ids


def readable_centre_ids(user):
    """Centres the user may read through the API (investigators: all, de-identified)."""
    a = access_for(user)
    if a.coordinator or a.investigator:
        return ALL_CENTRES
    return a.own_centre_ids


def editable_centre_ids(user):
    a = access_for(user)
    if a.coordinator:
        return ALL_CENTRES
    return a.managed_centre_ids


def can_view_centre(user, centre_id):
    ids = visible_centre_ids(user)
    return ids is ALL_CENTRES or centre_id in ids


def can_edit_centre(user, centre_id):
    ids = editable_centre_ids(user)
    return ids is ALL_CENTRES or centre_id in ids


def can_use_admin(user):
    a = access_for(user)
    return a.coordinator or bool(a.own_centre_ids)


def can_write_clinical(user):
    a = access_for(user)
    return a.coordinator or bool(a.managed_centre_ids)


def can_read_clinical(user):
    a = access_for(user)
    return a.coordinator or bool(a.own_centre_ids)


def can_use_api(user):
    a = access_for(user)
    return a.coordinator or a.investigator or bool(a.own_centre_ids)


def centre_id_of(record):
    """The centre a record belongs to, following its model's ``centre_lookup``."""
    path = getattr(record, "centre_lookup", None)
    if path is None:  # registry-wide data (vocabularies)
        return None
    if path == "id":
        return record.pk
    *hops, last = path.split("__")
    target = record
    for hop in hops:
        target = getattr(target, hop, None)
        if target is None:
            return None
    return getattr(target, f"{last}_id", None)


# --- Outlier reviews (reports.OutlierReview) ---------------------------------------------


def can_answer_outlier_review(user, centre_id):
    """A centre answers its own reviews: its data managers and leads, nobody else (not the coordinator)."""
    return centre_id in access_for(user).own_centre_ids


def can_sign_off_outlier_review(user):
    """The coordinator puts queries and signs reviews off."""
    return access_for(user).coordinator


def surgeon_comparison_visible(user, surgeon, run_or_none):
    """May ``user`` see ``surgeon``'s surgeon-level comparison (of ``run_or_none``, or of live data if None)?

    The coordinator and the surgeon's own centre (its data managers and leads) always.
    Anyone else only for a run, and only once the outlier process for that surgeon in
    that run is over: the surgeon has a review in the run and every one is signed off.
    Live data (no run) has no sign-off, so it stays with the coordinator and the centre.
    ``surgeon`` is a ``sites.Surgeon`` or its id.
    """
    a = access_for(user)
    if a.coordinator:
        return True
    if not isinstance(surgeon, int):
        surgeon_id, centre_id = surgeon.pk, surgeon.centre_id
    else:
        from .models import Surgeon

        surgeon_id = surgeon
        centre_id = Surgeon.objects.filter(pk=surgeon).values_list("centre_id", flat=True).first()
    if centre_id is not None and centre_id in a.own_centre_ids:
        return True
    if run_or_none is None or not (a.investigator or a.own_centre_ids):
        return False
    statuses = set(run_or_none.outlier_reviews.filter(surgeon_id=surgeon_id).values_list("status", flat=True))
    return statuses == {"signed_off"}


# --- Data queries (registry.DataQuery, issue 12) ------------------------------------------


def can_read_data_queries(user):
    """Data queries are operational, not research data: the coordinator and the centres' own users, never
    investigators (a query names a record by its id and quotes its dates and values)."""
    a = access_for(user)
    return a.coordinator or bool(a.own_centre_ids)


def can_raise_data_query(user):
    return access_for(user).coordinator


def can_answer_data_query(user, centre_id):
    """A data manager of the record's centre, or the coordinator; a centre lead reads only."""
    a = access_for(user)
    return a.coordinator or centre_id in a.managed_centre_ids


def can_close_data_query(user):
    """Closing and re-opening are the coordinator's: no data manager closes a query about their own data."""
    return access_for(user).coordinator
