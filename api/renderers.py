import csv
import io

from rest_framework import serializers
from rest_framework.renderers import BaseRenderer

# A spreadsheet would run a cell starting with these as a formula.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ";".join(csv_cell(v) for v in value)
    text = str(value)
    if isinstance(value, str) and text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


class EchoBuffer:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value):
        return value


class CSVRenderer(BaseRenderer):
    """``?format=csv``. Lists stream from the view; this renders anything else (errors, one record)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        rows = data if isinstance(data, list) else [data]
        buffer = io.StringIO()
        if rows and isinstance(rows[0], dict):
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: csv_cell(v) for k, v in row.items()})
        return buffer.getvalue().encode()


def is_interval(name):
    return name == "ci" or name.endswith("_ci")


def statistics_cell(value):
    # R and pandas read 0/1 as logical without a converter; "true"/"false" would stay text.
    if isinstance(value, bool):
        return "1" if value else "0"
    return csv_cell(value)


def day_column(name, group_columns):
    # A curve point's count named as the group's (its `events`) would read as the group's total.
    return f"{name}_on_day" if name in group_columns else name


def declared_columns(group_serializer):
    """The columns a group always has, from its documented shape: the CSV keeps them when every group lacks the
    value (all suppressed: no survival table at all), so one analysis script reads every download."""
    fields = {name: field for name, field in group_serializer().fields.items() if field.required}
    own, curve = [], []
    for name, field in fields.items():
        if is_interval(name):
            own += [f"{name}_low", f"{name}_high"]
        elif isinstance(field, serializers.ListSerializer):
            curve += list(field.child.fields)
        else:
            own.append(name)
    return own + [day_column(name, own) for name in curve]


def statistics_rows(groups, group_serializer=None):
    """A statistics payload's groups as flat rows: (columns, rows), one row per group, or per group and day
    where the group carries a curve (a survival table).

    An interval ``ci`` (or ``median_ci``) becomes ``ci_low`` and ``ci_high``, both empty when it is null; a
    dict ``x`` becomes ``x_<key>`` columns; a curve point's ``events`` becomes ``events_on_day``. A group with
    an empty curve (suppressed, or nobody followed) is still one row, its day columns empty.
    """
    columns, rows = {}, []
    for group in groups:
        cells, curve = {}, []
        for name, value in group.items():
            if is_interval(name):
                low, high = value if value is not None else (None, None)
                cells[f"{name}_low"], cells[f"{name}_high"] = low, high
            elif isinstance(value, dict):
                cells.update({f"{name}_{key}": item for key, item in value.items()})
            elif isinstance(value, list):
                curve = value
            else:
                cells[name] = value
        columns.update(dict.fromkeys(cells))
        for point in curve or [{}]:
            day = {day_column(name, cells): item for name, item in point.items()}
            columns.update(dict.fromkeys(day))
            rows.append({**cells, **day})
    if group_serializer is not None:
        columns.update(dict.fromkeys(declared_columns(group_serializer)))
    return list(columns) or ["group"], rows


class StatisticsCSVRenderer(CSVRenderer):
    """``?format=csv`` on ``/stats/…``: a table pandas and R read as it comes (``statistics_rows``, the columns
    the view's ``group_serializer`` documents); a null (a suppressed cell) is an empty cell. Errors render as
    on every other endpoint."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if not (isinstance(data, dict) and "groups" in data):
            return super().render(data, accepted_media_type, renderer_context)
        view = (renderer_context or {}).get("view")
        columns, rows = statistics_rows(data["groups"], getattr(view, "group_serializer", None))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({name: statistics_cell(value) for name, value in row.items()})
        return buffer.getvalue().encode()
