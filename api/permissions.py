from rest_framework.permissions import SAFE_METHODS, BasePermission, DjangoModelPermissions

from sites import access


class RegistryPermission(DjangoModelPermissions):
    """Which kinds of record a role may read or write (``sites.backends.RoleBackend``).

    Which rows is the scoped queryset's job (``readable_by`` / ``editable_by``).
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": [],
    }

    def has_permission(self, request, view):
        if not request.user or not request.user.is_authenticated or not access.can_use_api(request.user):
            return False
        if request.method not in SAFE_METHODS and access.must_deidentify(request.user):
            return False
        return super().has_permission(request, view)

    def _queryset(self, view):
        # Only the model matters here: the view's class-level queryset, not the scoped and annotated one that
        # get_queryset builds (DRF would build it once more per request just to read its model; issue 16).
        queryset = getattr(view, "queryset", None)
        return queryset if queryset is not None else super()._queryset(view)


class CanReadRegistry(BasePermission):
    """Any registry role may read aggregate statistics."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and access.can_use_api(request.user))
