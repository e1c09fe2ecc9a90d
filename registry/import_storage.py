"""Where an uploaded import file waits between the preview and the confirmation.

django-import-export's default keeps it in the system temp folder under the name the
confirm form posts back, so a crafted name reads (and then deletes) another file there.
Here the name is a random token that must look like one, and the file lives in the
uploader's own folder under IMPORT_TEMPORARY_ROOT: another user's token finds nothing.
"""

import contextvars
import csv
import io
import re
import secrets
from contextlib import contextmanager
from pathlib import Path

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied, SuspiciousFileOperation
from django.http import Http404, HttpResponse
from django.urls import path
from import_export.admin import ImportMixin
from import_export.forms import ConfirmImportForm
from import_export.tmp_storages import BaseStorage

from sites import access

from .imports import CONFIRM_WARNINGS_LABEL, import_formats, template_context, template_csv

# Set by the import admin for the length of one request (registry.admin.ImportWithUploaderStorage).
current_uploader = contextvars.ContextVar("current_uploader", default=None)
TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)


@contextmanager
def uploads_of(user):
    token = current_uploader.set(user.pk)
    try:
        yield
    finally:
        current_uploader.reset(token)


class UploaderTemporaryStorage(BaseStorage):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.uploader_id = current_uploader.get()
        if self.uploader_id is None:
            raise SuspiciousFileOperation("An import file is kept only for a known uploader.")

    def folder(self):
        return Path(settings.IMPORT_TEMPORARY_ROOT) / str(int(self.uploader_id))

    def path(self):
        if not self.name or not TOKEN_PATTERN.match(self.name):
            raise SuspiciousFileOperation("This is not the name of an uploaded import file.")
        path = self.folder() / self.name
        if not path.is_file():
            raise SuspiciousFileOperation("This upload is not yours, or it has already been imported.")
        return path

    def save(self, data):
        folder = self.folder()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.name = secrets.token_urlsafe(TOKEN_BYTES)
        target = folder / self.name
        mode = "wb" if isinstance(data, bytes) else "w"
        with open(target, mode, encoding=None if mode == "wb" else self.encoding) as file:
            file.write(data)
        target.chmod(0o600)

    def read(self):
        mode = self.read_mode
        with open(self.path(), mode, encoding=None if "b" in mode else self.encoding) as file:
            return file.read()

    def remove(self):
        self.path().unlink()


class UploaderStorageImportMixin(ImportMixin):
    """The import admin, with each request's upload kept in its uploader's folder."""

    def import_action(self, request, **kwargs):
        with uploads_of(request.user):
            return super().import_action(request, **kwargs)

    def process_import(self, request, **kwargs):
        with uploads_of(request.user):
            return super().process_import(request, **kwargs)


# --- Soft warnings (registry.soft_warnings): the import's confirm-warnings step ----------------------------


class ConfirmWarningsImportForm(ConfirmImportForm):
    """The confirm step's form, with the one box that confirms the soft warnings the preview listed."""

    confirm_warnings = forms.BooleanField(
        required=False,
        label=CONFIRM_WARNINGS_LABEL,
        help_text="The rows listed with soft warnings in the preview are imported only with this box ticked; "
        "each confirmation is kept with your name.",
    )


class SoftWarningImportMixin(ImportMixin):
    """The preview lists each row's soft warnings; the import saves them only when the box is ticked.

    Without it, rows with warnings are refused (and, one file being one transaction, the whole file) with a
    message saying so. Hard errors stay errors: such a file gets no confirm form at all.
    """

    confirm_form_class = ConfirmWarningsImportForm
    import_template_name = "admin/registry/import.html"

    def get_import_resource_kwargs(self, request, **kwargs):
        form = kwargs.get("form")
        resource_kwargs = super().get_import_resource_kwargs(request, **kwargs)
        if isinstance(form, ConfirmWarningsImportForm) and form.is_bound and form.is_valid():
            resource_kwargs["confirm_warnings"] = bool(form.cleaned_data.get("confirm_warnings"))
        return resource_kwargs


# --- Every form's import (registry.imports.RESOURCES): the admin side ------------------------------------

ERRORS_SESSION_KEY = "registry_import_errors"
ERROR_COLUMNS = ["row", "column", "value", "message"]


def _csv_response(text, filename):
    response = HttpResponse("\ufeff" + text, content_type="text/csv; charset=utf-8")  # BOM: Excel reads UTF-8
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


class RegistryImportMixin(SoftWarningImportMixin, UploaderStorageImportMixin):
    """The import of one form: ``import_resource_class`` (registry.imports), the importing user bound to it.

    Beside the import page: ``import/template.csv``, the form's template filled with the user's own
    centre's codes (``registry.imports.template_context``), and ``import/errors.csv``, the messages of the
    user's last preview of this form (row, column, value, message), kept in the user's own session only.
    CSV files may be separated by commas, semicolons or tabs (``registry.imports.DelimitedCSV``).
    """

    import_resource_class = None  # e.g. registry.imports.PatientResource

    @property
    def import_formats(self):
        return import_formats(super().import_formats)

    def get_import_resource_classes(self, request):
        return [self.import_resource_class]

    def get_import_resource_kwargs(self, request, **kwargs):
        kwargs = super().get_import_resource_kwargs(request, **kwargs)
        kwargs["user"] = request.user
        return kwargs

    def has_import_permission(self, request):
        return access.can_write_clinical(request.user)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("import/template.csv", view(self.import_template_view), name=f"{prefix}_import_template"),
            path("import/errors.csv", view(self.import_errors_view), name=f"{prefix}_import_errors"),
            *super().get_urls(),
        ]

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        if request.method == "POST":
            result = (getattr(response, "context_data", None) or {}).get("result")
            stored = request.session.get(ERRORS_SESSION_KEY, {})
            stored[self.opts.label_lower] = list(getattr(result, "error_records", None) or [])
            request.session[ERRORS_SESSION_KEY] = stored
        return response

    def import_template_view(self, request):
        if not self.has_import_permission(request):
            raise PermissionDenied
        resource = self.import_resource_class
        return _csv_response(template_csv(resource, template_context(request.user)), f"{resource.form}_import.csv")

    def import_errors_view(self, request):
        if not self.has_import_permission(request):
            raise PermissionDenied
        records = request.session.get(ERRORS_SESSION_KEY, {}).get(self.opts.label_lower)
        if not records:
            raise Http404("No errors from your last import of this form.")
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=ERROR_COLUMNS, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
        return _csv_response(out.getvalue(), f"{self.import_resource_class.form}_import_errors.csv")
