"""Scheduling on a real PostgreSQL: booking rules, reschedule, status graph, N+1, RLS."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import (
    BookingRuleViolation,
    Conflict,
    DoubleBooking,
    InvalidTransition,
    NotFound,
    StaleVersion,
)
from neonpro.domain.schemas.appointment import AppointmentCreate, Cancel, Reschedule, Window
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.schemas.service_type import ServiceTypeCreate
from neonpro.domain.vocabulary import AppointmentStatus, CancellationReason
from neonpro.services import catalog, clinics, patients, scheduling

SP = ZoneInfo("America/Sao_Paulo")
STAFF = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000b1"), "receptionist")
ADMIN = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000b2"), "system")


def next_weekday(weekday: int) -> date:
    """A date 2+ weeks ahead falling on ``weekday`` (0 = Monday)."""
    day = date.today() + timedelta(days=14)  # noqa: DTZ011
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=SP)


class World:
    def __init__(self, container: Container) -> None:
        self.c = container
        self.clinic = clinics.create_clinic(container.service_uow(ADMIN),
                                            ClinicCreate(name="Clínica Teste")).id
        self.other = clinics.create_clinic(container.service_uow(ADMIN),
                                           ClinicCreate(name="Outra")).id
        self.prof = catalog.add_professional(self.uow(), ProfessionalCreate(
            full_name="Dra. Ana", work_start_time=time(8), work_end_time=time(18),
            break_start_time=time(12), break_end_time=time(13), max_daily_appointments=4,
            appointment_buffer_minutes=15, license_expiry_date=date.today() + timedelta(days=60),  # noqa: DTZ011
        )).id
        self.service = catalog.add_service_type(
            self.uow(), ServiceTypeCreate(name="Consulta", duration_minutes=30)).id
        self.patient = patients.register_patient(self.uow(), PatientCreate(
            full_name="Paciente Um")).id

    def uow(self, clinic: uuid.UUID | None = None) -> object:
        return self.c.uow(clinic or self.clinic, STAFF)

    def book(self, start: datetime, minutes: int = 30, **kw: object):  # type: ignore[no-untyped-def]
        data = AppointmentCreate(patient_id=self.patient, professional_id=self.prof,
                                 service_type_id=self.service, start_time=start,
                                 end_time=start + timedelta(minutes=minutes), **kw)  # type: ignore[arg-type]
        return scheduling.book_appointment(self.uow(), data)  # type: ignore[arg-type]


@pytest.fixture
def w(container: Container) -> World:
    return World(container)


def test_booking_inside_hours_succeeds(w: World) -> None:
    day = next_weekday(1)
    booked = w.book(at(day, 9), clinical_notes="queixa: dor")
    assert booked.status == "scheduled"
    assert booked.time_zone == "America/Sao_Paulo"
    assert booked.clinical_notes == "queixa: dor"
    assert booked.created_by == STAFF.id


@pytest.mark.parametrize(("hour", "minute", "reason"), [
    (7, 30, "working hours"), (17, 45, "working hours"), (12, 15, "break"),
])
def test_booking_outside_hours_or_in_the_break_is_refused(
    w: World, hour: int, minute: int, reason: str
) -> None:
    with pytest.raises(BookingRuleViolation, match=reason):
        w.book(at(next_weekday(2), hour, minute))


def test_weekend_is_refused_unless_the_professional_works_weekends(w: World) -> None:
    with pytest.raises(BookingRuleViolation, match="weekends"):
        w.book(at(next_weekday(5), 9))


def test_buffer_daily_maximum_and_overlap(w: World) -> None:
    day = next_weekday(3)
    w.book(at(day, 9))
    with pytest.raises(DoubleBooking):
        w.book(at(day, 9, 15))
    with pytest.raises(BookingRuleViolation, match="buffer"):
        w.book(at(day, 9, 40))  # 10 minutes after the end, buffer is 15
    w.book(at(day, 9, 45))  # exactly the buffer: accepted
    w.book(at(day, 14))
    w.book(at(day, 15))
    with pytest.raises(BookingRuleViolation, match="daily maximum"):
        w.book(at(day, 16))


def test_expired_licence_is_refused(w: World) -> None:
    far = next_weekday(1) + timedelta(days=7 * 12)
    with pytest.raises(BookingRuleViolation, match="licence"):
        w.book(at(far, 9))


def test_database_refuses_overlap_even_without_the_rules(w: World) -> None:
    day = next_weekday(4)
    w.book(at(day, 10))
    data = AppointmentCreate(patient_id=w.patient, professional_id=w.prof,
                             start_time=at(day, 10, 10), end_time=at(day, 10, 40))
    with pytest.raises(DoubleBooking), w.c.uow(w.clinic, STAFF) as tx:
        tx.appointments.add(data, time_zone="America/Sao_Paulo")  # repository: no rule checks


def test_reschedule_links_counts_and_frees_the_old_slot(w: World) -> None:
    day = next_weekday(1)
    first = w.book(at(day, 9))
    moved = scheduling.reschedule_appointment(
        w.uow(), first.id, Reschedule(version=1, start_time=at(day, 9, 15),  # type: ignore[arg-type]
                                      end_time=at(day, 9, 45), reason="patient asked"))
    assert moved.rescheduled_from_id == first.id
    assert moved.reschedule_count == 1
    assert moved.status == "scheduled"
    old = w.c.uow(w.clinic, STAFF)
    with old as tx:
        assert tx.appointments.get(first.id).status == "rescheduled"
    again = scheduling.reschedule_appointment(
        w.uow(), moved.id, Reschedule(version=1, start_time=at(day, 14),  # type: ignore[arg-type]
                                      end_time=at(day, 14, 30)))
    assert again.reschedule_count == 2
    w.book(at(day, 9))  # the original slot is free again


def test_reschedule_onto_a_taken_slot_is_refused_and_changes_nothing(w: World) -> None:
    day = next_weekday(2)
    first = w.book(at(day, 9))
    w.book(at(day, 14))
    with pytest.raises(DoubleBooking):
        scheduling.reschedule_appointment(
            w.uow(), first.id, Reschedule(version=1, start_time=at(day, 14, 10),  # type: ignore[arg-type]
                                          end_time=at(day, 14, 40)))
    with w.c.uow(w.clinic, STAFF) as tx:
        assert tx.appointments.get(first.id).status == "scheduled"


def test_status_graph(w: World) -> None:
    day = next_weekday(3)
    appt = w.book(at(day, 11))
    appt = scheduling.confirm_appointment(w.uow(), appt.id, appt.version)  # type: ignore[arg-type]
    appt = scheduling.check_in(w.uow(), appt.id, appt.version)  # type: ignore[arg-type]
    appt = scheduling.start_appointment(w.uow(), appt.id, appt.version)  # type: ignore[arg-type]
    done = scheduling.complete_appointment(w.uow(), appt.id, appt.version)  # type: ignore[arg-type]
    assert done.status == "completed"
    assert done.no_show_actual_outcome == "attended"
    with pytest.raises(InvalidTransition):
        scheduling.cancel_appointment(w.uow(), done.id, Cancel(  # type: ignore[arg-type]
            version=done.version, reason=CancellationReason.PATIENT))
    with pytest.raises(StaleVersion):
        scheduling.confirm_appointment(w.uow(), done.id, 1)  # type: ignore[arg-type]
    with w.c.uow(w.clinic, STAFF) as tx:
        patient = tx.patients.get(w.patient)
    assert patient.total_appointments == 1
    assert patient.last_visit_date == day


def test_no_show_and_cancel(w: World) -> None:
    day = next_weekday(4)
    missed = w.book(at(day, 9))
    missed = scheduling.mark_no_show(w.uow(), missed.id, missed.version)  # type: ignore[arg-type]
    assert missed.no_show_actual_outcome == "no_show"
    cancelled = w.book(at(day, 14))
    cancelled = scheduling.cancel_appointment(w.uow(), cancelled.id, Cancel(  # type: ignore[arg-type]
        version=1, reason=CancellationReason.CLINIC))
    assert cancelled.cancelled_by == STAFF.id
    assert cancelled.status == AppointmentStatus.CANCELLED
    w.book(at(day, 14))  # a cancelled appointment does not block
    with w.c.uow(w.clinic, STAFF) as tx:
        patient = tx.patients.get(w.patient)
    assert (patient.total_no_shows, patient.total_appointments) == (1, 1)


def test_delete_only_bookings_that_never_happened(w: World) -> None:
    day = next_weekday(1)
    appt = w.book(at(day, 16))
    scheduling.delete_appointment(w.uow(), appt.id, 1)  # type: ignore[arg-type]
    with pytest.raises(NotFound), w.c.uow(w.clinic, STAFF) as tx:
        tx.appointments.get(appt.id)
    done = w.book(at(day, 16))
    done = scheduling.start_appointment(w.uow(), done.id, 1)  # type: ignore[arg-type]
    with pytest.raises(Conflict):
        scheduling.delete_appointment(w.uow(), done.id, done.version)  # type: ignore[arg-type]


def test_another_clinic_sees_no_appointment(w: World) -> None:
    appt = w.book(at(next_weekday(2), 16))
    with pytest.raises(NotFound), w.c.uow(w.other, STAFF) as tx:
        tx.appointments.get(appt.id)
    with w.c.uow(w.other, STAFF) as tx:
        window = Window(at(next_weekday(2), 0), at(next_weekday(2), 23))
        assert tx.appointments.calendar(window) == []


def test_calendar_of_fifty_costs_a_constant_number_of_statements(w: World) -> None:
    profs = [catalog.add_professional(w.uow(), ProfessionalCreate(  # type: ignore[arg-type]
        full_name=f"Prof {i}", max_daily_appointments=50, appointment_buffer_minutes=0,
        can_work_weekends=True)).id for i in range(5)]
    people = [patients.register_patient(w.uow(), PatientCreate(  # type: ignore[arg-type]
        full_name=f"Pessoa {i}")).id for i in range(10)]
    day = next_weekday(0) + timedelta(days=21)
    for i in range(50):
        start = at(day, 8) + timedelta(minutes=20 * (i // 5))
        scheduling.book_appointment(w.uow(), AppointmentCreate(  # type: ignore[arg-type]
            patient_id=people[i % 10], professional_id=profs[i % 5], service_type_id=w.service,
            start_time=start, end_time=start + timedelta(minutes=20)))
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    engine = w.c.database.engine("app")
    event.listen(engine, "before_cursor_execute", count)
    try:
        entries = scheduling.calendar(w.uow(), Window(at(day, 0), at(day, 23, 59)))  # type: ignore[arg-type]
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(entries) == 50
    assert {e.patient_name for e in entries} == {f"Pessoa {i}" for i in range(10)}
    assert {e.professional_name for e in entries} == {f"Prof {i}" for i in range(5)}
    assert all(e.service_name == "Consulta" for e in entries)
    # the tenant context, one joined query, one audit event, and before COMMIT the
    # commit token (a lost COMMIT acknowledgement is then resolved, never guessed)
    assert len(statements) == 4
    assert statements[-1].startswith("INSERT INTO commit_tokens")
