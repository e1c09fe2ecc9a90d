"""A run's frozen cohort: written once at the cut, read by every centre's report.

Re-rendering a run reads this file, not the live tables, so it gives the same
numbers whatever was corrected since.
"""

import dataclasses
import datetime
import gzip
import json

from registry.models import ComplicationType

from .cohort import CohortRow, cohort

DATE_FIELDS = {f.name for f in dataclasses.fields(CohortRow) if "date" in str(f.type)}


def _encode(value):
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(type(value))


def build(as_of):
    rows = cohort(as_of=as_of)
    types = list(ComplicationType.objects.order_by("name").values("code", "name", "catheter_related"))
    payload = {"as_of": as_of.isoformat(), "complication_types": types, "rows": [dataclasses.asdict(r) for r in rows]}
    return gzip.compress(json.dumps(payload, default=_encode, separators=(",", ":")).encode(), mtime=0)


def load(data):
    payload = json.loads(gzip.decompress(data))
    rows = []
    for item in payload["rows"]:
        for name in DATE_FIELDS:
            if item.get(name):
                item[name] = datetime.date.fromisoformat(item[name])
        item["complications"] = {code: datetime.date.fromisoformat(day) for code, day in item["complications"].items()}
        rows.append(CohortRow(**item))
    return rows, payload["complication_types"]
