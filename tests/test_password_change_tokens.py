"""A changed password revokes the user's API tokens (issue 10, item 5)."""

from django.contrib.auth import get_user_model
from django.utils import timezone
from knox.models import AuthToken


def tokens_of(user):
    return AuthToken.objects.filter(user=user).count()


def test_password_change_revokes_every_token(data_manager_a, investigator):
    AuthToken.objects.create(user=data_manager_a)
    AuthToken.objects.create(user=data_manager_a)
    AuthToken.objects.create(user=investigator)

    data_manager_a.set_password("a-new-password-42")
    data_manager_a.save()

    assert tokens_of(data_manager_a) == 0
    assert tokens_of(investigator) == 1  # only that user's


def test_password_change_through_the_admin_form_revokes_tokens(client, coordinator, data_manager_a):
    AuthToken.objects.create(user=data_manager_a)
    client.force_login(coordinator)
    response = client.post(
        f"/admin/auth/user/{data_manager_a.pk}/password/",
        {"password1": "Another-pass-9876", "password2": "Another-pass-9876", "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    data_manager_a.refresh_from_db()
    assert data_manager_a.check_password("Another-pass-9876")
    assert tokens_of(data_manager_a) == 0


def test_other_saves_keep_the_tokens(data_manager_a):
    AuthToken.objects.create(user=data_manager_a)
    data_manager_a.last_login = timezone.now()
    data_manager_a.save(update_fields=["last_login"])
    data_manager_a.email = "dm@example.org"
    data_manager_a.save()
    get_user_model().objects.filter(pk=data_manager_a.pk).update(first_name="x")
    assert tokens_of(data_manager_a) == 1
