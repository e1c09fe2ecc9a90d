"""Rules across rows hold under concurrent writes: the patient's row is locked first (issue 11)."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from registry.models import Implantation, Treatment
from registry.services import save_record
from sites.models import Role

from .factories import ImplantationFactory, PatientFactory, SurgeonFactory, user_with_role

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_dose_saved_while_never_treated_is_being_recorded_is_refused(centre_a):
    user = user_with_role(Role.DATA_MANAGER, centre_a)
    implantation = ImplantationFactory(patient=PatientFactory(centre=centre_a), surgeon=SurgeonFactory(centre=centre_a))
    reason_saved, release = threading.Event(), threading.Event()
    outcome = {}

    def record_never_treated():
        try:
            with transaction.atomic():
                row = Implantation.objects.get(pk=implantation.pk)
                row.never_treated_reason = "progression"
                save_record(row, user=user)
                reason_saved.set()
                release.wait(10)  # still uncommitted while the dose arrives
        finally:
            connection.close()

    def give_a_dose():
        try:
            reason_saved.wait(10)
            dose = Treatment(
                implantation=Implantation.objects.get(pk=implantation.pk),  # read before the reason commits
                given_on=implantation.implanted_on + datetime.timedelta(days=14),
                drug="fudr",
                dose=Decimal("0.12"),
                dose_unit="mg/kg/day",
                dose_change="full",
            )
            started.set()
            save_record(dose, user=user)
            outcome["dose"] = "saved"
        except ValidationError as error:
            outcome["dose"] = error.message_dict
        finally:
            connection.close()

    started = threading.Event()
    first, second = threading.Thread(target=record_never_treated), threading.Thread(target=give_a_dose)
    first.start()
    second.start()
    assert started.wait(10)
    second.join(0.5)  # the dose waits on the patient's lock...
    assert second.is_alive(), "the dose did not wait for the never-treated reason's transaction"
    release.set()
    first.join(10)
    second.join(10)

    assert outcome["dose"] != "saved"
    assert "given_on" in outcome["dose"] and "never treated" in outcome["dose"]["given_on"][0]
    assert not Treatment.objects.filter(implantation=implantation).exists()
    assert Implantation.objects.get(pk=implantation.pk).never_treated_reason == "progression"
