"""The audit trail's rows name their author, also after the author's account is deleted.

django-simple-history links a history row to its user by a foreign key that is set to
NULL when the user is deleted. Each historical model here also keeps the username as
text, written as the row is created, so "who" survives the account (issue 11).
"""

from django.db import models
from django.dispatch import receiver
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record


class AttributedHistory(models.Model):
    history_user_name = models.CharField(
        max_length=150, blank=True, editable=False, help_text="The author's username, kept if the account is deleted."
    )

    class Meta:
        abstract = True


def audited_history(**kwargs):
    """``HistoricalRecords`` for every audited model: the author's name kept with each row."""
    return HistoricalRecords(bases=[AttributedHistory], **kwargs)


@receiver(pre_create_historical_record)
def keep_the_authors_name(sender, history_instance, history_user=None, **kwargs):
    if history_user is not None and hasattr(history_instance, "history_user_name"):
        history_instance.history_user_name = history_user.get_username()
