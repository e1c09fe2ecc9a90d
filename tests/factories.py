"""Factories for every model. Dates are fixed relative to a base date so tests are repeatable."""

import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from registry.models import (
    Complication,
    ComplicationType,
    FollowUp,
    Implantation,
    LiverTest,
    Patient,
    PerfusionCheck,
    PumpModel,
    SystemicTherapyLine,
    Treatment,
)
from registry.vocabulary import (
    Approach,
    Device,
    DoseChange,
    DoseUnit,
    Drug,
    HoldReason,
    Indication,
    PrimaryTumour,
    Sex,
    VitalStatus,
)
from sites.models import Centre, Membership, ReportRecipient, Role, Surgeon

BASE_DATE = datetime.date(2024, 3, 1)


def days_after(n, base=BASE_DATE):
    return base + datetime.timedelta(days=n)


class CentreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Centre
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"C{n:03d}")
    name = factory.LazyAttribute(lambda o: f"Centre {o.code}")
    country = "FR"


class ReportRecipientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReportRecipient

    centre = factory.SubFactory(CentreFactory)
    email = factory.Sequence(lambda n: f"lead{n}@example.org")


class SurgeonFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Surgeon

    code = factory.Sequence(lambda n: f"S{n:04d}")
    centre = factory.SubFactory(CentreFactory)
    prior_pump_count = 0


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    role = Role.DATA_MANAGER
    centre = factory.SubFactory(CentreFactory)


def user_with_role(role, centre=None, **user_fields):
    """A user holding one role; centre roles need ``centre``."""
    user = UserFactory(**user_fields)
    Membership.objects.create(
        user=user, role=role, centre=centre if role in (Role.DATA_MANAGER, Role.CENTRE_LEAD) else None
    )
    return user


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    centre = factory.SubFactory(CentreFactory)
    pseudonym = factory.Sequence(lambda n: f"PT-{n:06d}")
    birth_year = 1960
    sex = Sex.FEMALE
    primary_tumour = PrimaryTumour.COLORECTAL


class ImplantationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Implantation

    patient = factory.SubFactory(PatientFactory)
    surgeon = factory.SubFactory(SurgeonFactory, centre=factory.SelfAttribute("..patient.centre"))
    implanted_on = BASE_DATE
    indication = Indication.UNRESECTABLE_FIRST_LINE
    approach = Approach.LAPAROTOMY
    device = Device.CONSTANT_FLOW_PUMP


class TreatmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Treatment

    implantation = factory.SubFactory(ImplantationFactory)
    given_on = factory.LazyAttribute(lambda o: days_after(17, o.implantation.implanted_on))
    drug = Drug.FUDR
    dose = Decimal("0.120")
    dose_unit = DoseUnit.MG_PER_KG_PER_DAY
    dose_change = DoseChange.FULL
    # A reduced or held dose needs its coded reason (issue 14).
    hold_reason = factory.LazyAttribute(lambda o: "" if o.dose_change == DoseChange.FULL else HoldReason.OTHER)


class PumpModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PumpModel
        django_get_or_create = ("name",)

    name = "Test constant-flow pump"
    manufacturer = "Test Medical"
    kind = Device.CONSTANT_FLOW_PUMP
    reservoir_volume_ml = Decimal("30.0")
    nominal_flow_ml_per_day = Decimal("1.00")


class ComplicationTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ComplicationType
        django_get_or_create = ("code",)

    code = "biliary_sclerosis"
    name = factory.LazyAttribute(lambda o: o.code.replace("_", " ").capitalize())
    grading_system = "ctcae"
    category = "toxicity"


class ComplicationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Complication

    implantation = factory.SubFactory(ImplantationFactory)
    type = factory.LazyFunction(lambda: ComplicationType.objects.get(code="biliary_sclerosis"))
    onset_on = factory.LazyAttribute(lambda o: days_after(60, o.implantation.implanted_on))
    grade = 2


class LiverTestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LiverTest

    implantation = factory.SubFactory(ImplantationFactory)
    measured_on = factory.LazyAttribute(lambda o: days_after(30, o.implantation.implanted_on))
    ast_u_per_l = 35
    alt_u_per_l = 30
    alp_u_per_l = 110
    bilirubin_umol_per_l = Decimal("12.0")


class PerfusionCheckFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PerfusionCheck

    implantation = factory.SubFactory(ImplantationFactory)
    checked_on = factory.LazyAttribute(lambda o: days_after(7, o.implantation.implanted_on))
    timing = "postoperative"
    method = "maa_scintigraphy"
    extrahepatic_perfusion = False


class SystemicTherapyLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SystemicTherapyLine

    patient = factory.SubFactory(PatientFactory)
    line_number = 1
    regimen = "folfox"
    started_on = days_after(-200)
    ended_on = days_after(-30)


class FollowUpFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FollowUp

    implantation = factory.SubFactory(ImplantationFactory)
    contact_on = factory.LazyAttribute(lambda o: days_after(180, o.implantation.implanted_on))
    vital_status = VitalStatus.ALIVE


from registry.models import DataQuery  # noqa: E402  (data queries, issue 12)


class DataQueryFactory(factory.django.DjangoModelFactory):
    """A query raised by hand on an implantation (``rule="manual"``); ``raised_by`` is the coordinator's."""

    class Meta:
        model = DataQuery

    implantation = factory.SubFactory(ImplantationFactory)
    patient = factory.SelfAttribute("implantation.patient")
    record_model = "registry.implantation"
    record_id = factory.SelfAttribute("implantation.pk")
    rule = "manual"
    message = "Please check the implantation date against the operative note."


# --- Missing-data codes (issue 12, registry.missing_data) ---------------------------------------------


def known_missing(model, *fields, reason="unknown"):
    """Factory keywords leaving each of ``fields`` of ``model`` empty, with the missing-data code ``reason``."""
    from registry.missing_data import companion

    out = {}
    for name in fields:
        out[name] = None if model._meta.get_field(name).null else ""
        out[companion(name)] = reason
    return out


# --- Systemic toxicity, readmissions and reoperations (issue 14) --------------------------------------

from registry.models import Readmission, SystemicToxicity  # noqa: E402


class SystemicToxicityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SystemicToxicity

    implantation = factory.SubFactory(ImplantationFactory)
    term = "neutropenia"
    grade = 2
    onset_on = factory.LazyAttribute(lambda o: days_after(45, o.implantation.implanted_on))


class ReadmissionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Readmission

    implantation = factory.SubFactory(ImplantationFactory)
    kind = "readmission"
    occurred_on = factory.LazyAttribute(lambda o: days_after(20, o.implantation.implanted_on))
    reason = "pump_pocket"


def another_implantation(first, **overrides):
    """An unsaved implantation of ``first``'s patient, as ``first`` but for ``overrides`` (a duplicate by default)."""
    fields = {
        "patient": first.patient,
        "surgeon": first.surgeon,
        "implanted_on": first.implanted_on,
        "indication": first.indication,
        "approach": first.approach,
        "device": first.device,
        "catheter_vessel": first.catheter_vessel,
    }
    return Implantation(**{**fields, **overrides})
