"""The record status dashboard page (issue 12): the admin view. What each cell says is ``registry.dashboard``.

Wired in ``ImplantationAdmin.get_urls`` through the admin site's ``admin_view`` (login, and the admin's
role check); the view itself asks the implantation admin for view permission. Rows come from
``Implantation.objects.visible_to(user)`` only; the centre filter offers only the visible centres.
"""

from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from sites import reads
from sites.models import Centre

from . import dashboard
from .models import Implantation

PER_PAGE = 100
TEMPLATE = "admin/registry/record_status.html"


def record_status_view(request, model_admin):
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    centres = list(Centre.objects.visible_to(request.user).order_by("code"))
    implantations = Implantation.objects.visible_to(request.user)
    centre = next((c for c in centres if str(c.pk) == request.GET.get("centre")), None)
    if centre is not None:
        implantations = implantations.filter(patient__centre=centre)
    states = {key: request.GET.get(key) for key in dashboard.COLUMN_KEYS if request.GET.get(key) in dashboard.STATES}
    rows = dashboard.filter_rows(dashboard.record_status_rows(implantations), states)
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("p"))

    change_url = reverse("admin:registry_implantation_change", args=[0]).replace("/0/", "/{}/")
    for row in page.object_list:
        url = change_url.format(row["implantation_id"])
        row["url"] = url
        row["cell_list"] = [
            {
                "column": column,
                "state": row["cells"][column.key],
                "label": dashboard.STATES[row["cells"][column.key]],
                "url": f"{url}#{column.anchor}" if column.anchor else url,
            }
            for column in dashboard.COLUMNS
        ]
    reads.note(request, Implantation.objects.filter(pk__in=[r["implantation_id"] for r in page.object_list]))

    kept = {"centre": str(centre.pk)} if centre else {}
    kept.update(states)

    def query(**changes):
        params = {**kept, **changes}
        return "?" + urlencode({k: v for k, v in params.items() if v})

    filters = [
        {
            "column": column,
            "choices": [
                {"label": "All", "url": query(**{column.key: ""}), "selected": column.key not in states},
                *(
                    {"label": label, "url": query(**{column.key: state}), "selected": states.get(column.key) == state}
                    for state, label in dashboard.STATES.items()
                ),
            ],
        }
        for column in dashboard.COLUMNS
    ]
    centre_choices = [{"label": "All visible centres", "url": query(centre=""), "selected": centre is None}] + [
        {"label": c.code, "url": query(centre=str(c.pk)), "selected": centre == c} for c in centres
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Record status" + (f": {centre.code}" if centre else ""),
        "opts": model_admin.model._meta,
        "columns": dashboard.COLUMNS,
        "states": dashboard.STATES,
        "page": page,
        "rows": page.object_list,
        "total": len(rows),
        "filters": filters,
        "centre_choices": centre_choices,
        "previous_url": query(p=str(page.previous_page_number())) if page.has_previous() else "",
        "next_url": query(p=str(page.next_page_number())) if page.has_next() else "",
    }
    return TemplateResponse(request, TEMPLATE, context)
