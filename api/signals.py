"""A changed password revokes every API token of its user (OWASP ASVS 4.0, V3.3.3)."""

from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save
from django.dispatch import receiver
from knox.models import AuthToken


@receiver(pre_save, sender=get_user_model())
def revoke_tokens_on_password_change(sender, instance, raw=False, update_fields=None, **kwargs):
    # A login's last_login update names its fields; only a save that may touch the password is compared.
    if raw or instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    stored = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if stored is not None and stored != instance.password:
        AuthToken.objects.filter(user_id=instance.pk).delete()
