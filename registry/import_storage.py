"""Where an uploaded import file waits between the preview and the confirmation.

django-import-export's default keeps it in the system temp folder under the name the
confirm form posts back, so a crafted name reads (and then deletes) another file there.
Here the name is a random token that must look like one, and the file lives in the
uploader's own folder under IMPORT_TEMPORARY_ROOT: another user's token finds nothing.
"""

import contextvars
import re
import secrets
from contextlib import contextmanager
from pathlib import Path

from django import forms
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from import_export.admin import ImportMixin
from import_export.forms import ConfirmImportForm
from import_export.tmp_storages import BaseStorage

from .imports import CONFIRM_WARNINGS_LABEL

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
    import_template_name = "admin/registry/implantation/import.html"

    def get_import_resource_kwargs(self, request, **kwargs):
        form = kwargs.get("form")
        resource_kwargs = super().get_import_resource_kwargs(request, **kwargs)
        if isinstance(form, ConfirmWarningsImportForm) and form.is_bound and form.is_valid():
            resource_kwargs["confirm_warnings"] = bool(form.cleaned_data.get("confirm_warnings"))
        return resource_kwargs
