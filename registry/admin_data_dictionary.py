"""The data dictionary page of the admin (issue 13): /admin/registry/data-dictionary/, ``?format=csv`` to download.

Wired in ``registry.admin_site.RegistryAdminSite.get_urls`` through ``admin_view`` (login and the admin's role
check) and listed with the registry's models on the admin index. The rows are ``registry.data_dictionary``'s.
"""

from itertools import groupby

from django.http import HttpResponse
from django.template.response import TemplateResponse

from . import data_dictionary

TEMPLATE = "admin/registry/data_dictionary.html"
URL_NAME = "registry_data_dictionary"
CSV_NAME = "hai-registry-data-dictionary.csv"


def data_dictionary_view(request, admin_site):
    rows = data_dictionary.rows()
    if request.GET.get("format") == "csv":
        response = HttpResponse(data_dictionary.as_csv(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{CSV_NAME}"'
        return response
    forms = [
        {"name": form, "title": data_dictionary.FORM_TITLES.get(form, form), "rows": list(form_rows)}
        for form, form_rows in groupby(rows, key=lambda row: row["form"])
    ]
    context = {
        **admin_site.each_context(request),
        "title": "Data dictionary",
        "forms": forms,
        "columns": [c for c in data_dictionary.COLUMNS if c != "form"],
    }
    return TemplateResponse(request, TEMPLATE, context)
