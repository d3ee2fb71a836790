"""Booking, changing and reading appointments once the clinic's no-show risk is scored
(issue 13, defect 1): every statement that returns appointments carries the score of that
row only, with none, one and many scores in the clinic.

Before the fix the write statements' ``RETURNING`` read the score through an uncorrelated
subquery (``FROM appointment_risk_scores, appointments``): with two or more scores every
booking and reschedule failed (CardinalityViolation), with exactly one it returned that
other appointment's score.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.schemas.appointment import (
    AppointmentCreate,
    AppointmentUpdate,
    Cancel,
    Reschedule,
    Window,
)
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.services import catalog, clinics, noshow, patients, scheduling

ACTOR = SystemActors.CLI
SP = ZoneInfo("America/Sao_Paulo")


class Clinic:
    """A fresh clinic with one professional who works every day and one patient."""

    def __init__(self, container: Container) -> None:
        self.c = container
        self.id = clinics.create_clinic(container.service_uow(ACTOR),
                                        ClinicCreate(name="Clínica Escore")).id
        self.prof = catalog.add_professional(self.uow(), ProfessionalCreate(
            full_name="Dra. Escore", can_work_weekends=True, appointment_buffer_minutes=0,
            work_start_time=time(7), work_end_time=time(20))).id
        self.patient = patients.register_patient(self.uow(), PatientCreate(
            full_name="Paciente Escore")).id
        self.day = datetime.now(SP).date() + timedelta(days=2)
        self._slot = 0

    def uow(self):  # type: ignore[no-untyped-def]
        return self.c.uow(self.id, ACTOR)

    def next_start(self) -> datetime:
        self._slot += 1
        return datetime.combine(self.day, time(7), tzinfo=SP) + timedelta(minutes=30 * self._slot)

    def book(self):  # type: ignore[no-untyped-def]
        start = self.next_start()
        return scheduling.book_appointment(self.uow(), AppointmentCreate(
            patient_id=self.patient, professional_id=self.prof, start_time=start,
            end_time=start + timedelta(minutes=30)))


def set_scores(database_url: str, scores: dict[uuid.UUID, int]) -> None:
    """Give each scored appointment a score of its own (the prior model scores alike)."""
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as conn:
        for appointment, score in scores.items():
            updated = conn.execute(text(
                "UPDATE appointment_risk_scores SET score = :s WHERE appointment_id = :a"),
                {"s": score, "a": appointment}).rowcount
            assert updated == 1
    engine.dispose()


def scored_clinic(container: Container, database_url: str,
                  count: int) -> tuple[Clinic, dict[uuid.UUID, int]]:
    """A clinic whose ``count`` appointments carry distinct scores."""
    w = Clinic(container)
    booked = [w.book() for _ in range(count)]
    expected: dict[uuid.UUID, int] = {}
    if count:
        result = noshow.score_upcoming(w.uow(), days=7)
        assert result.scored == count
        expected = {a.id: 11 + 7 * i for i, a in enumerate(booked)}
        set_scores(database_url, expected)
    return w, expected


@pytest.mark.parametrize("count", [0, 1, 3])
def test_every_returned_appointment_carries_its_own_score(
    container: Container, database_url: str, count: int
) -> None:
    w, expected = scored_clinic(container, database_url, count)

    # a new booking has no score, whatever the clinic holds (was: 500 or another's score)
    fresh = w.book()
    assert fresh.no_show_risk_score is None
    assert fresh.no_show_model_version is None
    expected[fresh.id] = None  # type: ignore[assignment]

    for appointment_id, score in list(expected.items()):
        read = scheduling.get_appointment(w.uow(), appointment_id)
        assert read.no_show_risk_score == score
        changed = scheduling.update_appointment(w.uow(), appointment_id, AppointmentUpdate(
            version=read.version, notes="trocou o horário"))
        assert changed.id == appointment_id
        assert changed.no_show_risk_score == score
        confirmed = scheduling.confirm_appointment(w.uow(), appointment_id, changed.version)
        assert confirmed.no_show_risk_score == score

    window = Window(start=datetime.combine(w.day, time(0), tzinfo=SP),
                    end=datetime.combine(w.day, time(23), tzinfo=SP))
    calendar = scheduling.calendar(w.uow(), window)
    assert {e.id: e.no_show_risk_score for e in calendar} == expected
    with w.uow() as tx:
        listed = tx.appointments.list_for_patient(w.patient).items
    assert {a.id: a.no_show_risk_score for a in listed} == expected

    # reschedule one scored booking (was: 500 with two or more scores): the new row has
    # no score yet, the old one keeps its own
    first = next(iter(expected))
    current = scheduling.get_appointment(w.uow(), first)
    start = w.next_start()
    moved = scheduling.reschedule_appointment(w.uow(), first, Reschedule(
        version=current.version, start_time=start, end_time=start + timedelta(minutes=30)))
    assert moved.rescheduled_from_id == first
    assert moved.no_show_risk_score is None
    assert scheduling.get_appointment(w.uow(), first).no_show_risk_score == expected[first]

    # scored again, the moved booking reads its own score, and a status change keeps it
    noshow.score_upcoming(w.uow(), days=7)
    set_scores(database_url, {moved.id: 97})
    cancelled = scheduling.cancel_appointment(w.uow(), moved.id, Cancel(
        version=moved.version, reason="patient"))
    assert cancelled.no_show_risk_score == 97
    again = w.book()  # several scores now: booking still works
    assert again.no_show_risk_score is None
