"""A set of codes from a vocabulary, stored as a JSON list (e.g. extrahepatic disease sites).

A JSON list rather than a PostgreSQL array so that the embedded SQLite database a newcomer runs
keeps working; the database cannot check the codes on both engines, so ``validate`` does
(``full_clean`` runs it in the admin, the API and the import alike). Stored sorted in the
vocabulary's order without repeats, so two equal sets compare equal in SQL and in history.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.db import models


def _ordered(vocabulary, codes):
    order = {code: i for i, code in enumerate(vocabulary.values)} if vocabulary else {}
    return sorted(set(codes), key=lambda code: (order.get(code, len(order)), code))


class CodedSetField(models.JSONField):
    def __init__(self, *args, vocabulary=None, **kwargs):
        self.vocabulary = vocabulary
        kwargs.setdefault("default", list)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)
        # ``vocabulary`` is not part of the schema, so deconstruct() leaves it out of migrations.

    def choices_for_form(self):
        return list(self.vocabulary.choices) if self.vocabulary else []

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        if isinstance(value, (list, tuple, set)):
            value = _ordered(self.vocabulary, value)
            setattr(model_instance, self.attname, value)
        return value

    def validate(self, value, model_instance):
        super().validate(value, model_instance)
        if value in (None, ""):
            return
        if not isinstance(value, list) or not all(isinstance(code, str) for code in value):
            raise ValidationError("Give a list of codes.", code="invalid")
        if self.vocabulary is not None:
            unknown = [code for code in value if code not in self.vocabulary.values]
            if unknown:
                allowed = ", ".join(self.vocabulary.values)
                raise ValidationError(
                    f"Not a known code: {', '.join(unknown)}. Use one or more of: {allowed}.", code="invalid_choice"
                )
        if len(set(value)) != len(value):
            raise ValidationError("Give each code once.", code="duplicate")

    def formfield(self, **kwargs):
        return forms.TypedMultipleChoiceField(
            choices=self.choices_for_form(),
            required=not self.blank,
            widget=forms.CheckboxSelectMultiple,
            label=self.verbose_name.capitalize() if self.verbose_name else None,
            help_text=self.help_text,
            **{k: v for k, v in kwargs.items() if k in ("label", "help_text", "required", "widget")},
        )
