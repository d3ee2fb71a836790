"""Services against in-memory repositories: one transaction per use case, rules applied."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.errors import (
    BookingRuleViolation,
    Conflict,
    DoubleBooking,
    InvalidTransition,
    StaleVersion,
)
from neonpro.domain.noshow import Features
from neonpro.domain.scheduling import Schedule, check_transition
from neonpro.domain.schemas.appointment import AppointmentCreate
from neonpro.domain.schemas.patient import PatientCreate, PatientUpdate
from neonpro.domain.vocabulary import AppointmentStatus as S
from neonpro.services import noshow, patients, scheduling
from tests.unit.fakes import FakeUnitOfWork

SP = ZoneInfo("America/Sao_Paulo")
ACTOR = Actor(uuid.uuid4(), "receptionist")
CLINIC = uuid.uuid4()
PROF = uuid.uuid4()
MONDAY = date(2031, 3, 3)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    fake = FakeUnitOfWork(ACTOR, CLINIC)
    fake.professionals.schedules[PROF] = Schedule(
        is_active=True, work_start=time(8), work_end=time(17), break_start=time(12),
        break_end=time(13), can_work_weekends=False, max_daily_appointments=3,
        buffer_minutes=10, license_expiry=date(2031, 12, 31),
    )
    return fake


def booking(start: datetime, minutes: int = 30) -> AppointmentCreate:
    return AppointmentCreate(patient_id=uuid.uuid4(), professional_id=PROF, start_time=start,
                             end_time=start + timedelta(minutes=minutes))


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=SP)


def test_register_commits_once(uow: FakeUnitOfWork) -> None:
    patient = patients.register_patient(uow, PatientCreate(full_name="Ana", cpf="111.444.777-35"))
    assert uow.commits == 1
    assert patient.cpf == "11144477735"
    assert patient.created_by == ACTOR.id


def test_failed_use_case_rolls_back_and_does_not_commit(uow: FakeUnitOfWork) -> None:
    patients.register_patient(uow, PatientCreate(full_name="Ana", cpf="11144477735"))
    with pytest.raises(Conflict):
        patients.register_patient(uow, PatientCreate(full_name="Bia", cpf="11144477735"))
    assert uow.commits == 1
    assert uow.rollbacks == 1
    assert len(uow.store["patients"]) == 1


def test_stale_update_is_refused(uow: FakeUnitOfWork) -> None:
    created = patients.register_patient(uow, PatientCreate(full_name="Ana"))
    patients.update_patient(uow, created.id, PatientUpdate(version=1, city="Natal"))
    with pytest.raises(StaleVersion):
        patients.update_patient(uow, created.id, PatientUpdate(version=1, city="Recife"))
    assert patients.get_patient(uow, created.id).city == "Natal"


def test_booking_rules_in_the_service(uow: FakeUnitOfWork) -> None:
    scheduling.book_appointment(uow, booking(at(MONDAY, 9)))
    with pytest.raises(DoubleBooking):
        scheduling.book_appointment(uow, booking(at(MONDAY, 9, 10)))
    with pytest.raises(BookingRuleViolation, match="buffer"):
        scheduling.book_appointment(uow, booking(at(MONDAY, 9, 35)))
    with pytest.raises(BookingRuleViolation, match="break"):
        scheduling.book_appointment(uow, booking(at(MONDAY, 11, 45)))
    with pytest.raises(BookingRuleViolation, match="working hours"):
        scheduling.book_appointment(uow, booking(at(MONDAY, 16, 45)))
    with pytest.raises(BookingRuleViolation, match="weekends"):
        scheduling.book_appointment(uow, booking(at(MONDAY + timedelta(days=6), 9)))
    with pytest.raises(BookingRuleViolation, match="licence"):
        scheduling.book_appointment(uow, booking(at(date(2032, 1, 5), 9)))
    scheduling.book_appointment(uow, booking(at(MONDAY, 13)))
    scheduling.book_appointment(uow, booking(at(MONDAY, 14)))
    with pytest.raises(BookingRuleViolation, match="daily maximum"):
        scheduling.book_appointment(uow, booking(at(MONDAY, 15)))
    assert len(uow.store["appointments"]) == 3


def test_working_hours_are_checked_in_the_clinics_time_zone(uow: FakeUnitOfWork) -> None:
    utc_noon_is_9_in_sao_paulo = datetime(2031, 3, 3, 12, 0, tzinfo=ZoneInfo("UTC"))
    scheduling.book_appointment(uow, booking(utc_noon_is_9_in_sao_paulo))
    with pytest.raises(BookingRuleViolation, match="working hours"):
        scheduling.book_appointment(uow, booking(datetime(2031, 3, 3, 10, 0,
                                                          tzinfo=ZoneInfo("UTC"))))


def test_confirm_follows_the_graph(uow: FakeUnitOfWork) -> None:
    booked = scheduling.book_appointment(uow, booking(at(MONDAY, 9)))
    confirmed = scheduling.confirm_appointment(uow, booked.id, 1)
    assert confirmed.status == "confirmed"
    with pytest.raises(InvalidTransition):
        scheduling.confirm_appointment(uow, booked.id, 2)


@pytest.mark.parametrize(("current", "target", "ok"), [
    (S.SCHEDULED, S.CONFIRMED, True), (S.CONFIRMED, S.IN_PROGRESS, True),
    (S.IN_PROGRESS, S.COMPLETED, True), (S.COMPLETED, S.SCHEDULED, False),
    (S.CANCELLED, S.CONFIRMED, False), (S.NO_SHOW, S.COMPLETED, False),
    (S.RESCHEDULED, S.CANCELLED, False), (S.IN_PROGRESS, S.CANCELLED, False),
    (S.SCHEDULED, S.NO_SHOW, True),
])
def test_status_graph(current: S, target: S, ok: bool) -> None:
    if ok:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(current, target)


def _history(months: int, per_month: int) -> list[Features]:
    """``per_month`` appointments a month for ``months`` months, every fifth a no-show."""
    start = datetime(2026, 1, 1, 10, tzinfo=UTC)
    return [Features(uuid.uuid4(), uuid.uuid4(), start + timedelta(days=i * 30 / per_month),
                     past_visits=0, past_no_shows=0, lead_days=3.0, weekday=1, hour=10,
                     appointment_type="consultation", reminders_sent=0, confirmed=False,
                     reschedules=0, days_since_last_visit=None, label=int(i % 5 == 0))
            for i in range(months * per_month)]


def test_evaluation_without_enough_history_says_what_to_run() -> None:
    # one a day for 240 days: 148 rows before a 3-month hold-out (too few), 178 before 2
    # months (too few), 209 before 1 month: the advice is the 1-month hold-out
    with pytest.raises(noshow.NotEnoughHistory, match=r"--holdout-months 1\)"):
        noshow.evaluate_rows(_history(8, 30), holdout_months=3)
    with pytest.raises(noshow.NotEnoughHistory, match="once the clinic has more history"):
        noshow.evaluate_rows(_history(4, 30), holdout_months=3)
    with pytest.raises(noshow.NotEnoughHistory, match="once the clinic has more history"):
        noshow.evaluate_rows([], holdout_months=3)
