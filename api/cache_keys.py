"""Cache keys of API answers: the data version, the view, the reader's scope and the normalised query.

Never the compiled SQL (issue 16): compiling a list's count query only to hash it cost as much as
the page. What a user may see is decided by their scope (which centres' rows), whether they are the
coordinator (unsuppressed figures) and whether they get de-identified answers (investigators, whose
codes are the release's: the release is in ``cohort_version``); two users alike in all three see the
same rows and figures.
"""

import hashlib

from reports.cohort import cohort_version
from sites import access


def scope_of(user):
    scope = access.readable_centre_ids(user)
    centres = "all" if scope is access.ALL_CENTRES else ",".join(map(str, sorted(scope)))
    viewer = "investigator" if access.must_deidentify(user) else "-"
    return f"{centres}|{access.is_coordinator(user)}|{viewer}"


def request_key(prefix, view, request, ignored=()):
    query = sorted((k, tuple(request.query_params.getlist(k))) for k in request.query_params if k not in ignored)
    raw = f"{cohort_version()}|{type(view).__name__}|{scope_of(request.user)}|{query}"
    return f"{prefix}:" + hashlib.sha256(raw.encode()).hexdigest()
