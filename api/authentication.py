"""Token authentication where each token acts in the one role it was created for (``api.models.TokenRole``)."""

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from rest_framework import exceptions

from sites import access

from .models import TokenRole


class RoleTokenAuthentication(TokenAuthentication):
    """knox's tokens, restricted to their role: ``sites.access.access_for`` then counts that role only.

    An investigator and data manager's data-manager token reads its centres' identifiable rows and
    writes; their investigator token reads de-identified data only. A token without a stored role
    (made before roles were) is refused: fail closed.
    """

    def authenticate_credentials(self, token):
        user, auth_token = super().authenticate_credentials(token)
        role = TokenRole.objects.filter(token=auth_token).values_list("role", flat=True).first()
        if role is None:
            raise exceptions.AuthenticationFailed(
                _("This token has no role (it predates role-scoped tokens): revoke it and ask for a new one.")
            )
        setattr(user, access.ACTING_ROLE_ATTRIBUTE, role)
        access.forget(user)
        return user, auth_token


class RoleTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme: knox's header, under its own name; every endpoint uses it."""

    target_class = RoleTokenAuthentication
    name = "roleToken"

    def get_security_definition(self, auto_schema):
        definition = build_bearer_security_scheme_object(
            header_name="Authorization", token_prefix=self.target.authenticate_header("")
        )
        definition["description"] = (
            "A token from POST /api/v1/auth/token/, acting in the one role it was created for. "
            "Send `Authorization: Token <token>`."
        )
        return definition
