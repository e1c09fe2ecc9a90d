"""Dates are written one way only: ISO 8601, YYYY-MM-DD (issue 13).

04/03/2026 is 4 March in London and 3 April in Boston; a registry of several countries cannot guess.
A date written another way is refused with the ISO form of every reading it may have, so the person
entering it picks the one they meant. The admin's date fields (``ISODateField``), the API and the CSV
import (``parse_iso_date``) all give the same message.
"""

import datetime
import re

from django import forms
from django.core.exceptions import ValidationError

ISO_FORMAT = "%Y-%m-%d"
ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
# Day, month and year in either order of the first two, with / . - or a space between them.
NUMERIC_DATE = re.compile(r"^(\d{1,2})[/.\- ](\d{1,2})[/.\- ](\d{4})$")
YEAR_FIRST_DATE = re.compile(r"^(\d{4})[/. ](\d{1,2})[/. ](\d{1,2})$")

WRITE_ISO = "Write dates as YYYY-MM-DD"
EXAMPLE = "e.g. 2026-03-04 for 4 March 2026"


def _date_or_none(year, month, day):
    try:
        return datetime.date(int(year), int(month), int(day))
    except ValueError:
        return None


def _spoken(date):
    return f"{date.day} {date:%B}"


def readings(text):
    """The dates ``text`` may mean when it is not ISO: day first, then month first; none when neither is a date."""
    text = text.strip()
    match = NUMERIC_DATE.match(text)
    if match:
        first, second, year = match.groups()
        found = [_date_or_none(year, second, first), _date_or_none(year, first, second)]
        return list(dict.fromkeys(date for date in found if date is not None))
    match = YEAR_FIRST_DATE.match(text)
    if match:
        date = _date_or_none(*match.groups())
        return [date] if date else []
    return []


def not_iso_message(text):
    """What to tell someone who wrote ``text`` for a date: the ISO form, and what ``text`` may have meant."""
    text = str(text).strip()
    match = ISO_DATE.match(text)
    if match:
        return f"{text} is not a date in the calendar. {WRITE_ISO}, {EXAMPLE}."
    found = readings(text)
    if not found:
        return f"{WRITE_ISO}, {EXAMPLE}."
    meant = " or ".join(f"{date.isoformat()} ({_spoken(date)})" for date in found)
    return f"{WRITE_ISO}. {text} is {meant}."


def parse_iso_date(text):
    """``text`` (YYYY-MM-DD) as a date; ValueError with ``not_iso_message`` for anything else."""
    if isinstance(text, datetime.datetime):
        raise ValueError(f"{WRITE_ISO}, {EXAMPLE}.")
    if isinstance(text, datetime.date):
        return text
    value = str(text).strip()
    match = ISO_DATE.match(value)
    date = _date_or_none(*match.groups()) if match else None
    if date is None:
        raise ValueError(not_iso_message(value))
    return date


class ISODateField(forms.DateField):
    """A form's date: YYYY-MM-DD only (django's own field would also take the locale's 04/03/2026)."""

    input_formats = [ISO_FORMAT]

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, datetime.datetime):
            return value.date()
        if isinstance(value, datetime.date):
            return value
        try:
            return parse_iso_date(value)
        except ValueError as error:
            raise ValidationError(str(error), code="invalid") from None
