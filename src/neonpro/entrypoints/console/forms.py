"""Reading the console's form fields: a bad value is a ValidationFailed naming the field
(shown in Portuguese by the page), never echoed and never a 500."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import TypeVar
from zoneinfo import ZoneInfo

from neonpro.domain.errors import ValidationFailed

E = TypeVar("E", bound=StrEnum)
Form = dict[str, str]


def text(form: Form, name: str) -> str:
    return form.get(name, "").strip()


def an_id(form: Form, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(text(form, name))
    except ValueError:
        raise ValidationFailed(name, "not an id") from None


def maybe_id(form: Form, name: str) -> uuid.UUID | None:
    return an_id(form, name) if text(form, name) else None


def choice(form: Form, name: str, kind: type[E]) -> E:
    try:
        return kind(text(form, name))
    except ValueError:
        raise ValidationFailed(name, "not one of the choices") from None


def maybe_choice(form: Form, name: str, kind: type[E]) -> E | None:
    return choice(form, name, kind) if text(form, name) else None


def moment(form: Form, name: str, zone: str) -> datetime | None:
    """A ``datetime-local`` field, read in the clinic's time zone."""
    raw = text(form, name)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=ZoneInfo(zone))
    except ValueError:
        raise ValidationFailed(name, "not a date and time") from None


def a_day(form: Form, name: str) -> date | None:
    raw = text(form, name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValidationFailed(name, "not a date") from None


def period(form: Form, zone: str, days: int = 30) -> tuple[date, date, datetime, datetime]:
    """The days ``de`` and ``ate`` (inclusive, local; default the last ``days`` days) and
    the instants they span: from the first day's midnight to the day after the last's."""
    tz = ZoneInfo(zone)
    last = a_day(form, "q:ate") or datetime.now(tz).date()
    first = a_day(form, "q:de") or last - timedelta(days=days - 1)
    if first > last:
        raise ValidationFailed("since", "must be before until")
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz)
    return first, last, start, end


def count(form: Form, name: str, limit: int = 2_147_483_647) -> int:
    raw = text(form, name) or "0"
    if not raw.isdigit() or int(raw) > limit:
        raise ValidationFailed(name, "not a count")
    return int(raw)
