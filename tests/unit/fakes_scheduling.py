"""An in-memory fake of the appointment book (``domain.ports.AppointmentRepository``).

As in SQL (``adapters/db/repositories/appointment.py``): this clinic's appointments only
(``NotFound`` otherwise), overlap refused among blocking statuses (the exclusion
constraint), a stale version refused before the status graph is checked, a reschedule
that marks the original ``rescheduled`` (it stops blocking) and books a linked new one, and
only bookings that never took place deletable. Rows are replaced on change, never changed
in place, so the unit of work's rollback restores them.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neonpro.domain.errors import Conflict, DoubleBooking, NotFound, StaleVersion
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.scheduling import BLOCKING, Slot, check_transition
from neonpro.domain.schemas.appointment import (
    AppointmentCreate,
    AppointmentRead,
    AppointmentUpdate,
    CalendarEntry,
    Cancel,
    Reschedule,
    Window,
)
from neonpro.domain.vocabulary import AppointmentStatus as S
from tests.unit.fakes_base import page_of, utcnow

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork

# as SqlAppointmentRepository: what may be deleted as booked in error
DELETABLE = frozenset({S.SCHEDULED, S.CONFIRMED, S.CANCELLED})


class FakeAppointments:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.rows: dict[uuid.UUID, dict[str, Any]] = uow.store.setdefault("appointments", {})

    def clinic_time_zone(self) -> str:
        clinic = self.uow.store.get("clinics", {}).get(self.uow.clinic_id)
        return "America/Sao_Paulo" if clinic is None else str(clinic.timezone)

    def blocking_slots(self, professional_id: uuid.UUID, window: Window,
                       exclude: uuid.UUID | None = None) -> list[Slot]:
        return [Slot(r["start_time"], r["end_time"]) for r in self.rows.values()
                if r["professional_id"] == professional_id and S(r["status"]) in BLOCKING
                and r["id"] != exclude and r["start_time"] < window.end
                and r["end_time"] > window.start]

    def add(self, data: AppointmentCreate, *, time_zone: str,
            booked_at: datetime | None = None) -> AppointmentRead:
        for r in self.rows.values():
            if (r["professional_id"] == data.professional_id and S(r["status"]) in BLOCKING
                    and r["start_time"] < data.end_time and data.start_time < r["end_time"]):
                raise DoubleBooking
        aid = uuid.uuid4()
        row = {**data.model_dump(), "id": aid, "clinic_id": self.uow.clinic_id,
               "status": "scheduled", "version": 1, "time_zone": time_zone}
        self.rows[aid] = row
        return AppointmentRead.model_construct(**row)

    def _row(self, appointment_id: uuid.UUID) -> dict[str, Any]:
        row = self.rows.get(appointment_id)
        if row is None or row.get("clinic_id", self.uow.clinic_id) != self.uow.clinic_id:
            raise NotFound("appointment", appointment_id)
        return row

    def get(self, appointment_id: uuid.UUID) -> AppointmentRead:
        return AppointmentRead.model_construct(**self._row(appointment_id))

    def _mine(self, keep: Callable[[dict[str, Any]], bool]) -> builtins.list[dict[str, Any]]:
        rows = [r for r in self.rows.values() if r["clinic_id"] == self.uow.clinic_id and keep(r)]
        return sorted(rows, key=lambda r: (r["start_time"], r["id"].bytes))

    def list_for_patient(self, patient_id: uuid.UUID,
                         page: PageRequest | None = None) -> Page[AppointmentRead]:
        rows = self._mine(lambda r: r["patient_id"] == patient_id)
        return page_of([AppointmentRead.model_construct(**r) for r in rows], page)

    def list_for_professional(self, professional_id: uuid.UUID, window: Window,
                              page: PageRequest | None = None) -> Page[AppointmentRead]:
        rows = self._mine(lambda r: r["professional_id"] == professional_id
                          and r["start_time"] < window.end and r["end_time"] > window.start)
        return page_of([AppointmentRead.model_construct(**r) for r in rows],
                       page or PageRequest(limit=200))

    def calendar(self, window: Window, professional_id: uuid.UUID | None = None,
                 statuses: tuple[S, ...] = ()) -> builtins.list[CalendarEntry]:
        rows = self._mine(lambda r: r["start_time"] < window.end and r["end_time"] > window.start
                          and (professional_id is None or r["professional_id"] == professional_id)
                          and (not statuses or S(r["status"]) in statuses))
        patients = self.uow.store.get("patients", {})
        professionals = self.uow.store.get("professionals", {})
        services = self.uow.store.get("service_types", {})
        return [CalendarEntry.model_construct(
            id=r["id"], start_time=r["start_time"], end_time=r["end_time"], status=r["status"],
            appointment_type=r["appointment_type"], patient_id=r["patient_id"],
            patient_name=patients[r["patient_id"]].full_name,
            professional_id=r["professional_id"],
            professional_name=professionals[r["professional_id"]].full_name,
            service_type_id=r["service_type_id"],
            service_name=None if r["service_type_id"] is None
            else services[r["service_type_id"]].name,
            version=r["version"]) for r in rows]

    def update(self, appointment_id: uuid.UUID, data: AppointmentUpdate) -> AppointmentRead:
        row = self._row(appointment_id)
        if row["version"] != data.version:
            raise StaleVersion("appointment", appointment_id, data.version)
        new = {**row, **data.changes(), "version": data.version + 1}
        self.rows[appointment_id] = new
        return AppointmentRead.model_construct(**new)

    def check_in(self, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
        row = self._row(appointment_id)
        if row["status"] not in (S.SCHEDULED, S.CONFIRMED):
            raise Conflict(f"cannot check in an appointment that is {row['status']}", "status")
        if row["version"] != version:
            raise StaleVersion("appointment", appointment_id, version)
        new = {**row, "check_in_time": utcnow(), "version": version + 1}
        self.rows[appointment_id] = new
        return AppointmentRead.model_construct(**new)

    def delete(self, appointment_id: uuid.UUID, version: int) -> None:
        row = self._row(appointment_id)
        if row["version"] != version:
            raise StaleVersion("appointment", appointment_id, version)
        if S(row["status"]) not in DELETABLE or row.get("actual_start_time") is not None:
            raise Conflict("only appointments that never took place can be deleted", "status")
        del self.rows[appointment_id]

    def _transition(self, appointment_id: uuid.UUID, version: int, target: S,
                    **values: Any) -> AppointmentRead:
        """As the SQL repository: stale version first, then the status graph; the row is
        replaced, never changed in place, so a rollback restores it."""
        row = self._row(appointment_id)
        if row["version"] != version:
            raise StaleVersion("appointment", appointment_id, version)
        check_transition(row["status"], target)
        new = {**row, **values, "status": target.value, "version": version + 1}
        self.rows[appointment_id] = new
        return AppointmentRead.model_construct(**new)

    def confirm(self, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
        return self._transition(appointment_id, version, S.CONFIRMED, patient_confirmed=True)

    def start(self, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
        return self._transition(appointment_id, version, S.IN_PROGRESS)

    def complete(self, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
        return self._transition(appointment_id, version, S.COMPLETED)

    def mark_no_show(self, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
        return self._transition(appointment_id, version, S.NO_SHOW)

    def cancel(self, appointment_id: uuid.UUID, data: Cancel) -> AppointmentRead:
        return self._transition(appointment_id, data.version, S.CANCELLED,
                                cancellation_reason=str(data.reason))

    def reschedule(self, appointment_id: uuid.UUID, data: Reschedule, *,
                   booked_at: datetime | None = None) -> AppointmentRead:
        """The original becomes ``rescheduled`` (it stops blocking); the new window is a new
        booking linked to it."""
        old = self._transition(appointment_id, data.version, S.RESCHEDULED)
        new_id = uuid.uuid4()
        row = {**self.rows[appointment_id], "id": new_id, "status": S.SCHEDULED.value,
               "version": 1, "start_time": data.start_time, "end_time": data.end_time,
               "rescheduled_from_id": old.id}
        self.rows[new_id] = row
        return AppointmentRead.model_construct(**row)
