"""A run's frozen cohort: written once at the cut, read by every centre's report.

Re-rendering a run reads this file, not the live tables, so it gives the same
numbers whatever was corrected since.
"""

import dataclasses
import datetime
import gzip
import json

from registry.models import ComplicationType
from registry.routers import primary_reads

from .cohort import CohortRow, cohort

DATE_FIELDS = {f.name for f in dataclasses.fields(CohortRow) if "date" in str(f.type)}
DATE_MAP_FIELDS = ("complications", "severe_complications")  # type code -> date
ROW_FIELDS = {f.name for f in dataclasses.fields(CohortRow)}


def _encode(value):
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(type(value))


def build(as_of):
    # The cut is taken on the primary: a replica behind it would freeze a run without its latest entries.
    with primary_reads():
        rows = cohort(as_of=as_of)
        types = list(ComplicationType.objects.order_by("name").values("code", "name", "category", "catheter_related"))
    payload = {"as_of": as_of.isoformat(), "complication_types": types, "rows": [dataclasses.asdict(r) for r in rows]}
    return gzip.compress(json.dumps(payload, default=_encode, separators=(",", ":")).encode(), mtime=0)


def load(data):
    payload = json.loads(gzip.decompress(data))
    rows = []
    for item in payload["rows"]:
        for name in DATE_FIELDS:
            if item.get(name):
                item[name] = datetime.date.fromisoformat(item[name])
        for name in DATE_MAP_FIELDS:
            item[name] = {code: datetime.date.fromisoformat(day) for code, day in item.get(name, {}).items()}
        # A snapshot written by an older method version lacks the newer fields: they take their defaults.
        rows.append(CohortRow(**{name: value for name, value in item.items() if name in ROW_FIELDS}))
    types = payload["complication_types"]
    for t in types:
        t.setdefault("category", "technical" if t.get("catheter_related") else "other")
    return rows, types
