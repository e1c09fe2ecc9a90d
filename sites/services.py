from django.db import transaction

from . import access
from .models import CENTRE_ROLES, Membership


@transaction.atomic
def grant_role(user, role, centre=None):
    """Give a user a role; the admin and API read roles, not the is_staff flag."""
    membership, _ = Membership.objects.get_or_create(user=user, role=role, centre=centre if role in CENTRE_ROLES else None)
    access.forget(user)
    return membership


@transaction.atomic
def revoke_role(user, role, centre=None):
    Membership.objects.filter(user=user, role=role, centre=centre if role in CENTRE_ROLES else None).delete()
    access.forget(user)
