"""History keeps its author's name after the account is deleted (issue 11)."""

from django.apps import apps
from django.contrib.auth import get_user_model
from django.urls import reverse

from registry.models import Implantation, Patient
from registry.services import save_record
from sites.history import AttributedHistory
from sites.models import Centre, Role

from .admin_forms import patient_form
from .factories import ImplantationFactory, user_with_role


def test_a_deleted_authors_name_stays_on_the_history(centre_a):
    author = user_with_role(Role.DATA_MANAGER, centre_a)
    implantation = ImplantationFactory(patient__centre=centre_a)
    implantation.length_of_stay_days = 9
    save_record(implantation, user=author, reason="Discharge letter")
    username = author.username

    get_user_model().objects.filter(pk=author.pk).delete()

    latest = Implantation.history.filter(id=implantation.pk).latest()
    assert latest.history_user is None  # the account is gone...
    assert latest.history_user_name == username  # ...its name is not


def test_every_audited_model_keeps_the_name(client, centre_a, coordinator):
    client.force_login(coordinator)
    client.post(reverse("admin:registry_patient_add"), patient_form(centre_a))
    assert Patient.history.latest().history_user_name == coordinator.username
    centre_a.name = "Renamed"
    centre_a._history_user = coordinator
    centre_a.save()
    assert Centre.history.latest().history_user_name == coordinator.username
    audited = [m for m in apps.get_models() if hasattr(m, "history")]
    assert audited and all(issubclass(m.history.model, AttributedHistory) for m in audited)
