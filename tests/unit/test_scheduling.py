"""Scheduling rules against in-memory fakes, beyond tests/unit/test_services.py: what blocks
time, rescheduling over one's own slot, days and zones, and the rules' order."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.errors import (
    BookingRuleViolation,
    DoubleBooking,
    InvalidTransition,
    NotFound,
    StaleVersion,
)
from neonpro.domain.scheduling import Schedule, Slot, check_booking
from neonpro.domain.schemas.appointment import AppointmentCreate, Cancel, Reschedule
from neonpro.domain.vocabulary import AppointmentStatus as S
from neonpro.domain.vocabulary import CancellationReason
from neonpro.services import scheduling
from tests.unit.fakes import FakeUnitOfWork

SP = ZoneInfo("America/Sao_Paulo")
ACTOR = Actor(uuid.uuid4(), "receptionist")
CLINIC = uuid.uuid4()
PROF = uuid.uuid4()
MONDAY = date(2031, 3, 3)
WEEKDAYS = Schedule(is_active=True, work_start=time(8), work_end=time(17), break_start=None,
                    break_end=None, can_work_weekends=False, max_daily_appointments=2,
                    buffer_minutes=15, license_expiry=None)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    fake = FakeUnitOfWork(ACTOR, CLINIC)
    fake.professionals.schedules[PROF] = WEEKDAYS
    return fake


def at(day: date, hh: int, mm: int = 0, zone: ZoneInfo = SP) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=zone)


def booking(start: datetime, minutes: int = 30) -> AppointmentCreate:
    return AppointmentCreate(patient_id=uuid.uuid4(), professional_id=PROF, start_time=start,
                             end_time=start + timedelta(minutes=minutes))


def test_a_cancelled_appointment_frees_its_slot(uow: FakeUnitOfWork) -> None:
    booked = scheduling.book_appointment(uow, booking(at(MONDAY, 9)))
    with pytest.raises(DoubleBooking):
        scheduling.book_appointment(uow, booking(at(MONDAY, 9)))
    scheduling.cancel_appointment(uow, booked.id, Cancel(version=1,
                                                         reason=CancellationReason.PATIENT))
    again = scheduling.book_appointment(uow, booking(at(MONDAY, 9)))
    assert again.status == S.SCHEDULED


def test_a_cancelled_appointment_no_longer_counts_towards_the_daily_maximum(
        uow: FakeUnitOfWork) -> None:
    first = scheduling.book_appointment(uow, booking(at(MONDAY, 9)))
    scheduling.book_appointment(uow, booking(at(MONDAY, 10)))
    with pytest.raises(BookingRuleViolation, match="daily maximum"):
        scheduling.book_appointment(uow, booking(at(MONDAY, 11)))
    scheduling.cancel_appointment(uow, first.id, Cancel(version=1,
                                                        reason=CancellationReason.CLINIC))
    scheduling.book_appointment(uow, booking(at(MONDAY, 11)))


def test_the_daily_maximum_counts_the_local_day_only(uow: FakeUnitOfWork) -> None:
    scheduling.book_appointment(uow, booking(at(MONDAY, 9)))
    scheduling.book_appointment(uow, booking(at(MONDAY, 10)))
    # 08:00 the next day in São Paulo: a different local day, so the maximum starts over
    tuesday = scheduling.book_appointment(uow, booking(at(MONDAY + timedelta(days=1), 8)))
    assert tuesday.start_time == at(MONDAY + timedelta(days=1), 8)


def test_rescheduling_may_overlap_its_own_old_slot_and_frees_it(uow: FakeUnitOfWork) -> None:
    booked = scheduling.book_appointment(uow, booking(at(MONDAY, 9)))
    moved = scheduling.reschedule_appointment(uow, booked.id, Reschedule(
        version=1, start_time=at(MONDAY, 9, 15), end_time=at(MONDAY, 9, 45)))
    assert moved.id != booked.id
    assert uow.appointments.get(booked.id).status == S.RESCHEDULED
    with pytest.raises(InvalidTransition):
        scheduling.confirm_appointment(uow, booked.id, 2)
    # the old 09:00 slot is free, but 09:50 is within the moved one's 15-minute buffer
    with pytest.raises(BookingRuleViolation, match="buffer"):
        scheduling.book_appointment(uow, booking(at(MONDAY, 9, 50)))


def test_rescheduling_still_checks_the_other_appointments(uow: FakeUnitOfWork) -> None:
    first = scheduling.book_appointment(uow, booking(at(MONDAY, 9)))
    scheduling.book_appointment(uow, booking(at(MONDAY, 11)))
    with pytest.raises(DoubleBooking):
        scheduling.reschedule_appointment(uow, first.id, Reschedule(
            version=1, start_time=at(MONDAY, 11, 10), end_time=at(MONDAY, 11, 40)))
    assert uow.appointments.get(first.id).status == S.SCHEDULED  # rolled back


def test_a_stale_version_is_refused_before_the_graph(uow: FakeUnitOfWork) -> None:
    booked = scheduling.book_appointment(uow, booking(at(MONDAY, 9)))
    scheduling.confirm_appointment(uow, booked.id, 1)
    with pytest.raises(StaleVersion):
        scheduling.cancel_appointment(uow, booked.id, Cancel(version=1,
                                                             reason=CancellationReason.OTHER))
    scheduling.start_appointment(uow, booked.id, 2)
    with pytest.raises(InvalidTransition):  # in progress: it can only be completed
        scheduling.cancel_appointment(uow, booked.id, Cancel(version=3,
                                                             reason=CancellationReason.OTHER))
    assert scheduling.complete_appointment(uow, booked.id, 3).status == S.COMPLETED


def test_an_unknown_professional_or_appointment_is_not_found(uow: FakeUnitOfWork) -> None:
    data = booking(at(MONDAY, 9)).model_copy(update={"professional_id": uuid.uuid4()})
    with pytest.raises(NotFound):
        scheduling.book_appointment(uow, data)
    with pytest.raises(NotFound):
        scheduling.get_appointment(uow, uuid.uuid4())


def test_working_hours_follow_the_clinics_time_zone(uow: FakeUnitOfWork) -> None:
    uow.clinics.seed(CLINIC, "America/Manaus")  # one hour behind São Paulo
    manaus = ZoneInfo("America/Manaus")
    booked = scheduling.book_appointment(uow, booking(at(MONDAY, 8, zone=manaus)))
    assert booked.time_zone == "America/Manaus"
    with pytest.raises(BookingRuleViolation, match="working hours"):
        # 16:45 in Manaus ends at 17:15 there, after hours
        scheduling.book_appointment(uow, booking(at(MONDAY, 16, 45, zone=manaus)))
    # 08:00 São Paulo is 07:00 Manaus: before hours there
    with pytest.raises(BookingRuleViolation, match="working hours"):
        scheduling.book_appointment(uow, booking(at(MONDAY, 8)))


# ----------------------------------------------------------- the pure rules, directly
def check(slot: Slot, schedule: Schedule = WEEKDAYS, same_day: tuple[Slot, ...] = ()) -> None:
    check_booking(schedule, slot, SP, same_day)


def test_an_appointment_must_end_after_it_starts_and_on_the_same_local_day() -> None:
    with pytest.raises(BookingRuleViolation, match="after start_time"):
        check(Slot(at(MONDAY, 10), at(MONDAY, 10)))
    all_hours = Schedule(is_active=True, work_start=None, work_end=None, break_start=None,
                         break_end=None, can_work_weekends=True, max_daily_appointments=9,
                         buffer_minutes=0, license_expiry=None)
    with pytest.raises(BookingRuleViolation, match="the day it starts"):
        check(Slot(at(MONDAY, 23, 30), at(MONDAY + timedelta(days=1), 0, 30)), all_hours)
    check(Slot(at(MONDAY, 23, 0), at(MONDAY, 23, 59)), all_hours)


def test_an_inactive_professional_books_nothing() -> None:
    inactive = Schedule(**{**{f: getattr(WEEKDAYS, f) for f in WEEKDAYS.__slots__},
                           "is_active": False})
    with pytest.raises(BookingRuleViolation, match="not active"):
        check(Slot(at(MONDAY, 9), at(MONDAY, 9, 30)), inactive)


def test_the_licence_is_valid_through_its_expiry_day() -> None:
    expiring = Schedule(**{**{f: getattr(WEEKDAYS, f) for f in WEEKDAYS.__slots__},
                           "license_expiry": MONDAY})
    check(Slot(at(MONDAY, 16), at(MONDAY, 16, 30)), expiring)
    tuesday = MONDAY + timedelta(days=1)
    with pytest.raises(BookingRuleViolation, match="licence"):
        check(Slot(at(tuesday, 9), at(tuesday, 9, 30)), expiring)


def test_the_buffer_applies_on_both_sides_and_ends_exactly_at_its_length() -> None:
    other = Slot(at(MONDAY, 10), at(MONDAY, 10, 30))
    with pytest.raises(BookingRuleViolation, match="buffer"):
        check(Slot(at(MONDAY, 9, 30), at(MONDAY, 9, 50)), same_day=(other,))  # 10 min before
    with pytest.raises(BookingRuleViolation, match="buffer"):
        check(Slot(at(MONDAY, 10, 40), at(MONDAY, 11)), same_day=(other,))  # 10 min after
    check(Slot(at(MONDAY, 9, 15), at(MONDAY, 9, 45)), same_day=(other,))  # exactly 15
    check(Slot(at(MONDAY, 10, 45), at(MONDAY, 11, 15)), same_day=(other,))
