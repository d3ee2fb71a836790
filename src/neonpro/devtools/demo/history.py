"""Appointment history: book each wished visit through the scheduling service, maybe
reschedule it, then resolve it on its day (cancelled, confirmed, no-show or completed)
under the outcome model of :mod:`.model`."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

from neonpro.devtools.demo.calendar import Calendar
from neonpro.devtools.demo.model import (
    CANCEL_BASE,
    CANCEL_LATENT,
    CONFIRM_BASE,
    CONFIRM_LATENT,
    EARLY,
    LATE,
    LEAD_PIVOT_DAYS,
    LONG_GAP_DAYS,
    MAX_PRIOR,
    NS_BASE,
    NS_CONFIRMED,
    NS_EARLY,
    NS_FIRST_VISIT,
    NS_LATE,
    NS_LATENT,
    NS_LEAD,
    NS_LONG_GAP,
    NS_PRIOR,
    NS_RESCHEDULED,
    NS_WEEKDAY,
    RESCHEDULE_BASE,
    RESCHEDULE_LATENT,
    sigmoid,
)
from neonpro.devtools.demo.reference import COMPLAINTS, CONFIRM_WINDOW_DAYS, PUSH_DAYS, SERVICES
from neonpro.devtools.demo.state import Booking, PatientState
from neonpro.domain.errors import BookingRuleViolation, DoubleBooking
from neonpro.domain.schemas.appointment import (
    AppointmentCreate,
    AppointmentRead,
    Cancel,
    Reschedule,
)
from neonpro.domain.vocabulary import AppointmentStatus, CancellationReason
from neonpro.services import scheduling


class History(Calendar):
    """Books, moves and resolves appointments day by day, in time order."""

    def book(self, day: int, preferred: int, patient: PatientState, service: str) -> Booking | None:
        prof = self.profs[patient.prof]
        s = SERVICES[service]
        for when in range(day, day + PUSH_DAYS):
            for start in self.candidates(prof, when, preferred, s.minutes)[:3]:
                data = AppointmentCreate(
                    start_time=self.moment(when, start),
                    end_time=self.moment(when, start + s.minutes),
                    patient_id=patient.id, professional_id=prof.id,
                    service_type_id=self.service_ids[patient.clinic][service],
                    room_id=prof.room, estimated_cost=Decimal(s.price),
                    tuss_code=s.tuss[0] if s.tuss else None,
                    tuss_procedure_name=s.tuss[1] if s.tuss else None,
                    chief_complaint=self.rng.choice(COMPLAINTS)
                    if s.tuss else None,
                )
                booked = self.booking_moment(data.start_time)
                try:
                    created = scheduling.book_appointment(self.uow(patient.clinic), data,
                                                          booked_at=booked)
                except (BookingRuleViolation, DoubleBooking):
                    self.skipped += 1
                    continue
                self.appointments += 1
                self.occupy(prof.index, when, start, start + s.minutes)
                return Booking(created, patient.index, prof.index, when, start, s.minutes,
                                service, booked)
        return None

    def move(self, b: Booking) -> Booking | None:
        """Reschedule ``b`` one to seven days later (same professional), or None."""
        prof, patient = self.profs[b.prof], self.patients[b.patient]
        first = b.day + self.rng.randint(1, 7)
        original = self.moment(b.day, b.start)
        asked = max(b.booked, min(original - timedelta(days=self.lead_rng.uniform(0.5, 5)),
                                  self.clock))
        for when in range(first, first + PUSH_DAYS):
            for start in self.candidates(prof, when, b.start, b.minutes)[:3]:
                reason = self.rng.choice(("a pedido do paciente", "agenda do profissional"))
                try:
                    moved = scheduling.reschedule_appointment(
                        self.uow(patient.clinic), b.appointment.id, Reschedule(
                            version=b.appointment.version, reason=reason,
                            start_time=self.moment(when, start),
                            end_time=self.moment(when, start + b.minutes)),
                        booked_at=min(asked, self.moment(when, start)))
                except (BookingRuleViolation, DoubleBooking):
                    self.skipped += 1
                    continue
                self.record(b, AppointmentStatus.RESCHEDULED)
                self.free(b)
                self.appointments += 1
                self.occupy(prof.index, when, start, start + b.minutes)
                return Booking(moved, b.patient, b.prof, when, start, b.minutes, b.service,
                                min(asked, self.moment(when, start)), b.reschedules + 1)
        return None

    # ------------------------------------------------------------ outcomes
    def no_show_logit(self, p: PatientState, b: Booking, *, confirmed: bool) -> float:
        x = NS_BASE + NS_LATENT * p.z + NS_PRIOR * min(p.no_shows, MAX_PRIOR)
        x += NS_WEEKDAY[self.date_of(b.day).weekday()]
        x += NS_EARLY if b.start < EARLY else NS_LATE if b.start >= LATE else 0.0
        if p.attended == 0:
            x += NS_FIRST_VISIT
        if b.reschedules:
            x += NS_RESCHEDULED
        if p.last_visit is not None and b.day - p.last_visit > LONG_GAP_DAYS:
            x += NS_LONG_GAP
        lead_days = (self.moment(b.day, b.start) - b.booked).total_seconds() / 86400
        x += NS_LEAD * (math.log1p(max(lead_days, 0.0)) - math.log1p(LEAD_PIVOT_DAYS))
        return x + (NS_CONFIRMED if confirmed else 0.0)

    def schedule(self, day: int, preferred: int, patient: int, service: str) -> None:
        """Book one wished visit; maybe reschedule it; queue it for its day's outcome."""
        p = self.patients[patient]
        booking = self.book(day, preferred, p, service)
        if booking is None:
            return
        if self.rng.random() < sigmoid(RESCHEDULE_BASE + RESCHEDULE_LATENT * p.z):
            booking = self.move(booking) or booking
        self.pending.setdefault(booking.day, []).append(booking)

    def resolve(self, b: Booking) -> None:
        p, rng = self.patients[b.patient], self.rng
        appointment = b.appointment
        future = b.day >= self.history_days
        cancel = rng.random() < sigmoid(CANCEL_BASE + CANCEL_LATENT * p.z) * (0.6 if future
                                                                                else 1.0)
        if cancel:
            reason = rng.choices((CancellationReason.PATIENT, CancellationReason.PROFESSIONAL,
                                  CancellationReason.CLINIC, CancellationReason.MEDICAL),
                                 (75, 10, 8, 7))[0]
            scheduling.cancel_appointment(self.uow(p.clinic), appointment.id, Cancel(
                version=appointment.version, reason=reason))
            self.free(b)
            self.record(b, AppointmentStatus.CANCELLED)
            return
        confirmed = rng.random() < sigmoid(CONFIRM_BASE + CONFIRM_LATENT * p.z)
        if future:
            confirmed = confirmed and b.day - self.history_days <= CONFIRM_WINDOW_DAYS
        if confirmed:
            appointment = scheduling.confirm_appointment(self.uow(p.clinic), appointment.id,
                                                         appointment.version)
        if future:
            self.record(b, AppointmentStatus.CONFIRMED if confirmed
                        else AppointmentStatus.SCHEDULED)
            return
        if rng.random() < sigmoid(self.no_show_logit(p, b, confirmed=confirmed)):
            scheduling.mark_no_show(self.uow(p.clinic), appointment.id, appointment.version)
            p.no_shows += 1
            self.free(b)
            self.record(b, AppointmentStatus.NO_SHOW)
            return
        self.attend(p.clinic, appointment)
        p.attended += 1
        p.last_visit = b.day
        self.record(b, AppointmentStatus.COMPLETED)

    def attend(self, clinic: int, appointment: AppointmentRead) -> None:
        """Start, then complete. No check-in step: the repositories stamp front-desk times
        with now(), which for a past appointment is not when it happened (start and complete
        stamp now() too, but the status graph needs them)."""
        done = scheduling.start_appointment(self.uow(clinic), appointment.id,
                                            appointment.version)
        scheduling.complete_appointment(self.uow(clinic), done.id, done.version)

    def create_appointments(self) -> None:
        visits = self.plan()
        total, done = len(visits), 0
        day = 0
        while done < total or self.pending:
            while done < total and visits[done][0] == day:
                self.schedule(*visits[done])
                done += 1
                self.progress("appointments", done, total)
            for booking in self.pending.pop(day, []):
                self.resolve(booking)
            day += 1
        self.progress("appointments", total, total)
