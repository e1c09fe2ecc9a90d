import re

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from .errors import ErrorSerializer

IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description='The ETag of your last read of the record, e.g. `"3"` (RFC 9110 §13.1.1). Without it: 428; '
    "if the record changed since: 412.",
)


class RegistryAutoSchema(AutoSchema):
    """Documents the error responses every operation can return, in the one error shape,
    and the version a conditional write must name (``api.preconditions``)."""

    def _is_conditional_write(self):
        from .preconditions import WRITES_NEEDING_A_VERSION, ConditionalWritesMixin

        return self.method in WRITES_NEEDING_A_VERSION and isinstance(self.view, ConditionalWritesMixin)

    def get_override_parameters(self):
        from .releases import RELEASE_PARAMETER, ReadsReleases

        parameters = super().get_override_parameters()
        if self.method == "GET" and isinstance(self.view, ReadsReleases):
            if not any(getattr(p, "name", None) == RELEASE_PARAMETER.name for p in parameters):
                parameters = [*parameters, RELEASE_PARAMETER]
        return [*parameters, IF_MATCH] if self._is_conditional_write() else parameters

    def _get_request_body(self, direction="request"):
        if self.method == "DELETE" and self._is_conditional_write():
            from .serializers import DeletionSerializer

            component = self.resolve_serializer(DeletionSerializer, direction)
            return {"content": {"application/json": {"schema": component.ref}}, "required": True}
        return super()._get_request_body(direction)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        # 400 bad input or filters, 404 unknown record or page, 406 unknown ?format=.
        codes = ["400", "401", "403", "404", "406", "429"]
        if self._is_conditional_write():
            codes += ["412", "428"]  # a stale or a missing If-Match
        for code in codes:
            responses.setdefault(code, self._get_response_for_code(ErrorSerializer, code, direction=direction))
        return responses


# --- What the API docs show: a summary per operation, descriptions without developer notes -------------

# Operation id prefix (the collection) -> the record's name with its article, and the collection's.
RECORDS = {
    "centres": ("a centre", "centres"),
    "surgeons": ("a surgeon", "surgeons"),
    "patients": ("a patient", "patients"),
    "implantations": ("an implantation", "implantations"),
    "treatments": ("an HAI dose", "HAI doses"),
    "complications": ("a complication", "complications"),
    "follow_ups": ("a follow-up contact", "follow-up contacts"),
    "liver_tests": ("a liver test", "liver tests"),
    "perfusion_checks": ("a perfusion check", "perfusion checks"),
    "systemic_toxicities": ("a systemic toxicity", "systemic toxicities"),
    "readmissions": ("a readmission or reoperation", "readmissions and reoperations"),
    "systemic_therapy_lines": ("a systemic therapy line", "systemic therapy lines"),
    "reports": ("a monthly report", "monthly reports"),
    "data_queries": ("a data query", "data queries"),
    "vocabularies_complication_types": ("a complication type", "complication types"),
    "pump_models": ("a pump model", "pump models"),
    "releases": ("a data release", "data releases"),
}
# The router's actions (the operation id's suffix) -> the summary, of the record (one) or the collection (many).
RECORD_ACTIONS = {
    "list": lambda one, many: f"List {many}",
    "create": lambda one, many: f"Add {one}",
    "retrieve": lambda one, many: f"Get {one}",
    "update": lambda one, many: f"Replace {one}",
    "partial_update": lambda one, many: f"Change fields of {one}",
    "destroy": lambda one, many: f"Delete {one}",
}
# Every other operation, by operation id. A new endpoint needs its line here (tests/test_api_docs.py).
SUMMARIES = {
    "auth_token_create": "Get an API token",
    "auth_token_revoke_create": "Revoke this token",
    "auth_token_revoke_all_create": "Revoke all your tokens",
    "vocabularies_retrieve": "List the fixed vocabularies",
    "data_dictionary_retrieve": "Get the data dictionary",
    "reports_pdf_retrieve": "Download a monthly report's PDF",
    "stats_complications_retrieve": "Complication rates",
    "stats_pump_use_retrieve": "Pump use",
    "stats_survival_retrieve": "Survival and freedom from pump failure",
    "stats_cumulative_incidence_retrieve": "Cumulative incidence",
    "stats_observed_expected_retrieve": "Observed against expected",
    "stats_concordance_retrieve": "Concordance with the expert consensus",
    "stats_readmissions_retrieve": "Readmission and reoperation rates",
    "releases_create": "Freeze a data release",
    "analysis_dataset_retrieve": "Download the analysis dataset",
    "analysis_dataset_dictionary_retrieve": "Get the analysis dataset's data dictionary",
}


def summary_of(operation_id):
    if operation_id in SUMMARIES:
        return SUMMARIES[operation_id]
    for action, summary in RECORD_ACTIONS.items():
        collection = operation_id.removesuffix(f"_{action}")
        if collection != operation_id and collection in RECORDS:
            return summary(*RECORDS[collection])
    return None


# Docstrings and help texts are written for developers too: where the code lives ("reports.outcomes",
# "``registry.data_dictionary``") and which issue brought it ("issue 12") mean nothing to the API's users.
_MODULE = r"`{0,2}(?:registry|reports|api|sites)(?:\.[A-Za-z_]+)+`{0,2}"
INTERNAL_NOTES = [
    re.compile(rf"\s*\((?:{_MODULE}|issue \d+[^()]*)\)"),  # a parenthesis holding nothing else
    re.compile(rf",\s*{_MODULE}(?=\))"),  # the last item of a parenthesis
]


def without_internal_notes(text):
    for pattern in INTERNAL_NOTES:
        text = pattern.sub("", text)
    return text


def _clean_descriptions(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = without_internal_notes(value)
            else:
                _clean_descriptions(value)
    elif isinstance(node, list):
        for item in node:
            _clean_descriptions(item)


def document_for_users(result, generator, request, public):
    """Postprocessing hook (SPECTACULAR_SETTINGS): a summary on every operation that has none from
    ``extend_schema``, and every description in the schema without developer notes."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and not operation.get("summary"):
                summary = summary_of(operation.get("operationId", ""))
                if summary:
                    operation["summary"] = summary
    _clean_descriptions(result)
    return result
