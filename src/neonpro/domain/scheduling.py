"""Scheduling rules: the appointment status graph and the booking checks (pure Python).

The database refuses overlaps by itself (exclusion constraint); these rules add what a
clinic expects on top: working hours and days, breaks, daily maximum, buffer between
appointments, licence validity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from neonpro.domain.errors import BookingRuleViolation, DoubleBooking, InvalidTransition
from neonpro.domain.vocabulary import AppointmentStatus as S

ALLOWED: dict[S, frozenset[S]] = {
    S.SCHEDULED: frozenset({S.CONFIRMED, S.IN_PROGRESS, S.CANCELLED, S.NO_SHOW, S.RESCHEDULED}),
    S.CONFIRMED: frozenset({S.IN_PROGRESS, S.CANCELLED, S.NO_SHOW, S.RESCHEDULED}),
    S.IN_PROGRESS: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    S.NO_SHOW: frozenset(),
    S.RESCHEDULED: frozenset(),
}
BLOCKING = frozenset({S.SCHEDULED, S.CONFIRMED, S.IN_PROGRESS, S.COMPLETED})


def check_transition(current: str, target: S) -> None:
    """Raise InvalidTransition unless ``current -> target`` is an edge of the graph."""
    if target not in ALLOWED[S(current)]:
        raise InvalidTransition("appointment", current, target.value)


@dataclass(frozen=True, slots=True)
class Schedule:
    """What booking needs to know about a professional."""

    is_active: bool
    work_start: time | None
    work_end: time | None
    break_start: time | None
    break_end: time | None
    can_work_weekends: bool
    max_daily_appointments: int
    buffer_minutes: int
    license_expiry: date | None


@dataclass(frozen=True, slots=True)
class Slot:
    start: datetime
    end: datetime


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone)


def check_booking(
    schedule: Schedule,
    slot: Slot,
    zone: ZoneInfo,
    same_day: Iterable[Slot],
) -> None:
    """Every booking rule; ``same_day`` are the professional's other blocking appointments
    on the local day of ``slot``. Raises BookingRuleViolation naming the rule."""
    if slot.end <= slot.start:
        raise BookingRuleViolation("end_time", "must be after start_time")
    if not schedule.is_active:
        raise BookingRuleViolation("professional_id", "the professional is not active")
    start, end = _local(slot.start, zone), _local(slot.end, zone)
    if start.date() != end.date():
        raise BookingRuleViolation("end_time", "an appointment must end on the day it starts")
    if schedule.license_expiry is not None and start.date() > schedule.license_expiry:
        raise BookingRuleViolation("professional_id", "the professional's licence has expired")
    if start.weekday() >= 5 and not schedule.can_work_weekends:  # noqa: PLR2004
        raise BookingRuleViolation("start_time", "the professional does not work on weekends")
    _check_hours(schedule, start.time(), end.time())
    others = list(same_day)
    if len(others) >= schedule.max_daily_appointments:
        raise BookingRuleViolation("start_time", "the professional's daily maximum is reached")
    buffer = timedelta(minutes=schedule.buffer_minutes)
    for other in others:
        if slot.start < other.end and other.start < slot.end:
            raise DoubleBooking
        if slot.start < other.end + buffer and other.start < slot.end + buffer:
            raise BookingRuleViolation(
                "start_time", "too close to another appointment of the professional (buffer)"
            )


def _check_hours(schedule: Schedule, start: time, end: time) -> None:
    if schedule.work_start is not None and schedule.work_end is not None and not (
        schedule.work_start <= start and end <= schedule.work_end
    ):
        raise BookingRuleViolation("start_time", "outside the professional's working hours")
    if schedule.break_start is not None and schedule.break_end is not None and (
        start < schedule.break_end and schedule.break_start < end
    ):
        raise BookingRuleViolation("start_time", "during the professional's break")
