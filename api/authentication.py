"""Token authentication where each token acts in the one role it was created for (``api.models.TokenRole``)."""

import binascii
from hmac import compare_digest

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import get_token_model
from knox.settings import CONSTANTS, knox_settings
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
        # knox's own loop (knox.auth.TokenAuthentication.authenticate_credentials), with the token's role joined
        # into the same query: one query per request where there were three (issue 16).
        message = _("Invalid token.")
        token = token.decode("utf-8")
        candidates = get_token_model().objects.filter(token_key=token[: CONSTANTS.TOKEN_KEY_LENGTH])
        for auth_token in candidates.select_related("user", "registry_role"):
            if self._cleanup_token(auth_token):
                continue
            try:
                digest = hash_token(token)
            except (TypeError, binascii.Error) as error:
                raise exceptions.AuthenticationFailed(message) from error
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                user, auth_token = self.validate_user(auth_token)
                break
        else:
            raise exceptions.AuthenticationFailed(message)
        try:
            role = auth_token.registry_role.role
        except TokenRole.DoesNotExist:
            role = None
        if role is None:
            raise exceptions.AuthenticationFailed(
                _("This token has no role (it predates role-scoped tokens): revoke it and ask for a new one.")
            )
        setattr(user, access.ACTING_ROLE_ATTRIBUTE, role)
        access.forget(user)
        return user, auth_token

    def _cleanup_token(self, auth_token):
        """Refuse this token if expired; other tokens are pruned nightly (``api.tasks.delete_expired_tokens``).

        knox's own clean-up loads and checks every token of the user on every request (issue 16).
        """
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


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
