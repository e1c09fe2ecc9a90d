"""``{% data_query_tools %}``: the data-query links on a clinical record's admin page (issue 12)."""

from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from sites import access

from ..models import DATA_QUERY_RECORD_MODELS, DataQuery

register = template.Library()


@register.simple_tag(takes_context=True)
def data_query_tools(context):
    """<li> links: "Data queries (n unresolved)" for whoever reads queries, "Raise a data query" for the coordinator."""
    record, request = context.get("original"), context.get("request")
    if record is None or record.pk is None or request is None:
        return ""
    label = record._meta.label_lower
    if label not in DATA_QUERY_RECORD_MODELS:
        return ""
    user = request.user
    where = {"record_model": label, "record_id": record.pk}
    links = []
    if access.can_read_data_queries(user):
        unresolved = DataQuery.objects.visible_to(user).filter(**where).unresolved().count()
        links.append(
            (
                f"{reverse('admin:registry_dataquery_changelist')}?{urlencode(where)}",
                "data-queries-link",
                f"Data queries ({unresolved} unresolved)",
            )
        )
    if access.can_raise_data_query(user):
        links.append(
            (
                f"{reverse('admin:registry_dataquery_add')}?{urlencode(where)}",
                "raise-data-query-link",
                "Raise a data query",
            )
        )
    return format_html_join("", '<li><a href="{}" id="{}">{}</a></li>', links) if links else format_html("")
