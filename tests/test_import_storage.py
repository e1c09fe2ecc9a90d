"""An upload waits for its confirmation in its uploader's own folder, under a random name (issue 10, item 3)."""

import tempfile
from pathlib import Path

import pytest

from registry.models import Implantation
from sites.models import Role

from .factories import PatientFactory, SurgeonFactory, user_with_role
from .test_import import PROCESS_URL, confirm, good_row, to_csv, upload


@pytest.fixture
def surgeon_a(centre_a):
    return SurgeonFactory(centre=centre_a, code="SURG-01")


@pytest.fixture
def patients_a(centre_a):
    return [PatientFactory(centre=centre_a, pseudonym="PT-000001")]


@pytest.fixture(autouse=True)
def import_root(settings, tmp_path):
    settings.IMPORT_TEMPORARY_ROOT = tmp_path / "imports"
    return settings.IMPORT_TEMPORARY_ROOT


def preview(client, user):
    client.force_login(user)
    response = upload(client, to_csv([good_row("PT-000001")]))
    assert response.context["confirm_form"] is not None
    return response


def test_upload_is_kept_under_a_random_name_in_the_uploaders_folder(
    client, data_manager_a, surgeon_a, patients_a, import_root
):
    response = preview(client, data_manager_a)
    name = response.context["confirm_form"].initial["import_file_name"]
    stored = import_root / str(data_manager_a.pk) / name
    assert stored.is_file() and len(name) == 43
    assert stored.stat().st_mode & 0o777 == 0o600
    assert (import_root / str(data_manager_a.pk)).stat().st_mode & 0o777 == 0o700

    assert confirm(client, response).status_code == 302
    assert Implantation.objects.count() == 1
    assert not stored.exists()  # removed once imported


@pytest.mark.parametrize("name", ["../../etc/passwd", "passwd", "tmpabcd1234", "a" * 42 + "/"])
def test_confirm_refuses_a_file_name_it_did_not_hand_out(client, data_manager_a, surgeon_a, patients_a, name):
    # A file in the system temp folder, as django-import-export's default storage would have read and deleted.
    victim = Path(tempfile.gettempdir()) / "tmpabcd1234"
    victim.write_text("patient,surgeon\n")
    try:
        response = preview(client, data_manager_a)
        form = dict(response.context["confirm_form"].initial, import_file_name=name)
        refused = client.post(PROCESS_URL, form)
        assert refused.status_code == 400
        assert victim.exists()
        assert Implantation.objects.count() == 0
    finally:
        victim.unlink(missing_ok=True)


def test_another_users_upload_cannot_be_confirmed(client, centre_a, data_manager_a, surgeon_a, patients_a, import_root):
    response = preview(client, data_manager_a)
    form = dict(response.context["confirm_form"].initial)
    colleague = user_with_role(Role.DATA_MANAGER, centre_a)
    client.force_login(colleague)

    assert client.post(PROCESS_URL, form).status_code == 400
    assert Implantation.objects.count() == 0
    assert (import_root / str(data_manager_a.pk) / form["import_file_name"]).is_file()
