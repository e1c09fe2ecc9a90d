from django.contrib import admin
from django.urls import include, path
from django.views import defaults
from django.views.generic import RedirectView

from api.errors import json_or_html

from .health import health

handler404 = json_or_html(defaults.page_not_found)
handler500 = json_or_html(defaults.server_error)

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # Login (password, then the second factor), two-factor enrolment, recovery codes, logout. The browsable
    # API and its documentation log in here too: DRF's own login pages (/api-auth/) are not served.
    path("account/", include("sites.urls")),
    path("api/v1/", include("api.urls")),
    path("health/", health, name="health"),
]
