"""Scheduling use cases: booking rules in Python, overlap refused by the database too."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from neonpro.domain.ports import AppointmentRepository, UnitOfWork
from neonpro.domain.scheduling import Slot, check_booking
from neonpro.domain.schemas.appointment import (
    AppointmentCreate,
    AppointmentRead,
    AppointmentUpdate,
    CalendarEntry,
    Cancel,
    Reschedule,
    Window,
)
from neonpro.domain.vocabulary import AppointmentStatus, AuditAction, AuditResource


def _local_day(moment: datetime, zone: ZoneInfo) -> Window:
    day = moment.astimezone(zone).date()
    start = datetime.combine(day, time.min, tzinfo=zone)
    return Window(start, start + timedelta(days=1))


def _check(uow: UnitOfWork, professional_id: uuid.UUID, start: datetime, end: datetime,
           exclude: uuid.UUID | None = None) -> str:
    """Lock the professional, check every booking rule, return the clinic's time zone."""
    zone_name = uow.appointments.clinic_time_zone()
    zone = ZoneInfo(zone_name)
    schedule = uow.professionals.schedule_for_update(professional_id)
    same_day = uow.appointments.blocking_slots(professional_id, _local_day(start, zone), exclude)
    check_booking(schedule, Slot(start, end), zone, same_day)
    return zone_name


def book_appointment(uow: UnitOfWork, data: AppointmentCreate, *,
                     booked_at: datetime | None = None) -> AppointmentRead:
    """Book if every rule holds: hours, days, break, daily maximum, buffer, licence.

    ``booked_at``: when the booking was really made, for imports of past bookings and the
    demo generator (default: now); the API never passes it.
    """
    with uow:
        zone = _check(uow, data.professional_id, data.start_time, data.end_time)
        appointment = uow.appointments.add(data, time_zone=zone, booked_at=booked_at)
        uow.commit()
    return appointment


def reschedule_appointment(uow: UnitOfWork, appointment_id: uuid.UUID, data: Reschedule, *,
                           booked_at: datetime | None = None) -> AppointmentRead:
    """Book the new window linked to the original, which becomes ``rescheduled``."""
    with uow:
        current = uow.appointments.get(appointment_id)
        _check(uow, current.professional_id, data.start_time, data.end_time,
               exclude=appointment_id)
        moved = uow.appointments.reschedule(appointment_id, data, booked_at=booked_at)
        uow.commit()
    return moved


def update_appointment(uow: UnitOfWork, appointment_id: uuid.UUID,
                       data: AppointmentUpdate) -> AppointmentRead:
    with uow:
        appointment = uow.appointments.update(appointment_id, data)
        uow.commit()
    return appointment


def cancel_appointment(uow: UnitOfWork, appointment_id: uuid.UUID,
                       data: Cancel) -> AppointmentRead:
    with uow:
        appointment = uow.appointments.cancel(appointment_id, data)
        uow.commit()
    return appointment


Step = Callable[[AppointmentRepository], Callable[[uuid.UUID, int], AppointmentRead]]


def _step(uow: UnitOfWork, appointment_id: uuid.UUID, version: int, pick: Step) -> AppointmentRead:
    with uow:
        appointment = pick(uow.appointments)(appointment_id, version)
        uow.commit()
    return appointment


def confirm_appointment(uow: UnitOfWork, appointment_id: uuid.UUID,
                        version: int) -> AppointmentRead:
    return _step(uow, appointment_id, version, lambda repo: repo.confirm)


def check_in(uow: UnitOfWork, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
    return _step(uow, appointment_id, version, lambda repo: repo.check_in)


def start_appointment(uow: UnitOfWork, appointment_id: uuid.UUID,
                      version: int) -> AppointmentRead:
    return _step(uow, appointment_id, version, lambda repo: repo.start)


def complete_appointment(uow: UnitOfWork, appointment_id: uuid.UUID,
                         version: int) -> AppointmentRead:
    return _step(uow, appointment_id, version, lambda repo: repo.complete)


def mark_no_show(uow: UnitOfWork, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
    return _step(uow, appointment_id, version, lambda repo: repo.mark_no_show)


def delete_appointment(uow: UnitOfWork, appointment_id: uuid.UUID, version: int) -> None:
    with uow:
        uow.appointments.delete(appointment_id, version)
        uow.commit()


def get_appointment(uow: UnitOfWork, appointment_id: uuid.UUID) -> AppointmentRead:
    """Read one appointment (clinical notes included); audited as a read of the patient's data."""
    with uow:
        appointment = uow.appointments.get(appointment_id)
        uow.audit.record(AuditAction.VIEW, AuditResource.APPOINTMENT, appointment_id,
                         patient_id=appointment.patient_id)
        uow.commit()
    return appointment


def calendar(uow: UnitOfWork, window: Window, professional_id: uuid.UUID | None = None,
             statuses: tuple[AppointmentStatus, ...] = ()) -> list[CalendarEntry]:
    """Appointments in a window with names; audited as one read of the calendar."""
    with uow:
        entries = uow.appointments.calendar(window, professional_id, statuses)
        uow.audit.record(AuditAction.VIEW, AuditResource.APPOINTMENT,
                         details={"returned": len(entries)})
        uow.commit()
    return entries
