"""The analysis dataset (issue 15): one row per implantation with every outcome, and its data dictionary.

The rows are ``reports.analysis_dataset``'s. Investigators read a data release's (``?release=``, default
the latest: ``api.releases``); the registry coordinator reads the live registry, rows named by their
real ids and codes. Nobody else: it is the whole registry's research table, not a centre's.
"""

import csv
import io

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import rules
from reports import analysis_dataset
from reports.cohort import live_cohort
from reports.releases import current_release
from sites import access

from .errors import ErrorSerializer
from .parameters import StrictQueryParameters
from .permissions import CanReadRegistry
from .releases import RELEASE_PARAMETER, ReadsReleases
from .renderers import CSVRenderer, statistics_cell


class CanReadAnalysisDataset(permissions.BasePermission):
    message = "The analysis dataset is for investigators (a data release) and the registry coordinator."

    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and (access.must_deidentify(user) or access.is_coordinator(user)))


class AnalysisCSVRenderer(BaseRenderer):
    """The dataset as CSV: the dictionary's columns in its order, booleans 0/1, empty cells for missing values,
    a list of codes joined by ';'."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if not isinstance(data, list):  # an error
            return CSVRenderer().render(data)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(analysis_dataset.COLUMN_NAMES)
        for row in data:
            writer.writerow([statistics_cell(row[name]) for name in analysis_dataset.COLUMN_NAMES])
        return buffer.getvalue().encode()


class ParquetRenderer(BaseRenderer):
    """The dataset as Apache Parquet (pyarrow): typed columns, booleans as booleans, missing values as nulls."""

    media_type = "application/vnd.apache.parquet"
    format = "parquet"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {name: [row[name] for row in data] for name in analysis_dataset.COLUMN_NAMES}
        types = {column["column"]: column["type"] for column in analysis_dataset.COLUMNS}
        arrays = {}
        for name, values in columns.items():
            kind = types[name]
            if kind in ("integer", "0/1/2") or name.endswith("_event"):
                arrays[name] = pa.array(values, type=pa.int32())
            elif kind == "0/1":
                arrays[name] = pa.array(values, type=pa.bool_())
            elif kind == "decimal":
                arrays[name] = pa.array(values, type=pa.float64())
            elif kind == "codes":
                arrays[name] = pa.array(values, type=pa.list_(pa.string()))
            else:
                arrays[name] = pa.array(values, type=pa.string())
        buffer = io.BytesIO()
        pq.write_table(pa.table(arrays), buffer)
        return buffer.getvalue()


FORMAT_PARAMETER = OpenApiParameter(
    "format", OpenApiTypes.STR, enum=["json", "csv", "parquet"], description="json (default), csv or parquet."
)


class AnalysisDatasetView(ReadsReleases, StrictQueryParameters, APIView):
    """One row per implantation: who and what (the release's opaque codes, year, indication, device, approach,
    surgeon experience), the case-mix variables, treatment, and every outcome from the outcome definitions
    (overall and hepatic progression-free survival, pump failure with competing events, the 90-day outcomes,
    conversion to resection, the entry day for delayed entry). No calendar date. Each column is described by
    GET /api/v1/analysis-dataset/dictionary/. Investigators read a data release (`release`, default the
    latest); the registry coordinator reads the live registry."""

    permission_classes = [CanReadAnalysisDataset]
    renderer_classes = [JSONRenderer, AnalysisCSVRenderer, ParquetRenderer]

    def handle_exception(self, exc):
        # An error is never a Parquet file: it comes in the one JSON error shape.
        if getattr(getattr(self.request, "accepted_renderer", None), "format", None) == "parquet":
            self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return super().handle_exception(exc)

    @extend_schema(
        parameters=[RELEASE_PARAMETER, FORMAT_PARAMETER],
        responses={
            (200, "application/json"): {"type": "array", "items": {"type": "object"}},
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="The same rows as CSV, booleans 0/1."),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The same rows as Parquet."
            ),
            403: ErrorSerializer,
        },
    )
    def get(self, request):
        from .views import log_export

        release = current_release()
        table = analysis_dataset.dataset(release) if release is not None else self.live_table()
        fmt = getattr(request.accepted_renderer, "format", "json")
        log_export(request, fmt, len(table))
        response = Response(table)
        if fmt in ("csv", "parquet"):
            name = release.name if release is not None else "live"
            response["Content-Disposition"] = f'attachment; filename="analysis-dataset-{name}.{fmt}"'
        return response

    @staticmethod
    def live_table():
        """The coordinator's: the live registry, rows named by real ids (patients by id) and codes."""
        from registry.models import ComplicationType

        rows = sorted(live_cohort().values(), key=lambda row: row.id)
        centre_codes = {row.centre_id: row.centre_code for row in rows}
        surgeon_codes = {row.surgeon_id: row.surgeon_code for row in rows}

        def codes(kind, pk):
            return {"centre": centre_codes, "surgeon": surgeon_codes}.get(kind, {}).get(pk, pk)

        types = list(ComplicationType.objects.values("code", "name", "category", "catheter_related"))
        return analysis_dataset.analysis_rows(rows, types, rules.today(), codes)


DICTIONARY_ROW = {
    "type": "object",
    "properties": {
        "column": {"type": "string"},
        "definition": {"type": "string"},
        "type": {"type": "string", "enum": list(analysis_dataset.TYPES)},
        "unit": {"type": "string", "description": "e.g. days, years, ng/mL; empty when none."},
        "allowed_values": {"type": "string", "description": "Codes with labels ('code = label; ...'), or a range."},
        "source": {"type": "string", "description": "The outcome definition or record the column comes from."},
    },
    "required": ["column", "definition", "type", "unit", "allowed_values", "source"],
}


class AnalysisDatasetDictionaryView(StrictQueryParameters, APIView):
    """The analysis dataset's data dictionary: each column's definition, type, unit, allowed values and source,
    in the dataset's column order. `?format=csv` gives the same rows as a spreadsheet."""

    permission_classes = [CanReadRegistry]

    @extend_schema(responses={200: {"type": "array", "items": DICTIONARY_ROW}})
    def get(self, request):
        return Response(analysis_dataset.COLUMNS)
