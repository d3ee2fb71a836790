"""Appointments in SQL: the status graph on every change, optimistic locking, joined lists.

Booking rules (working hours, buffer, daily maximum, licence) are checked by the
scheduling service before it calls :meth:`add` or :meth:`reschedule`; the exclusion
constraint refuses any overlap whatever the caller checked.
"""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, date, datetime
from typing import Any, cast

from sqlalchemy import (
    Insert,
    Select,
    Table,
    Update,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from neonpro.adapters.db.hot import HotStatement, bound_values, value_binds
from neonpro.adapters.db.models import (
    Appointment,
    AppointmentRiskScore,
    Clinic,
    Patient,
    Professional,
    ServiceType,
)
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.errors import Conflict, NotFound, StaleVersion, ValidationFailed
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.scheduling import BLOCKING, Slot, check_transition
from neonpro.domain.schemas.appointment import (
    READ_FIELDS,
    AppointmentCreate,
    AppointmentFilters,
    AppointmentRead,
    AppointmentUpdate,
    CalendarEntry,
    Cancel,
    Reschedule,
    Window,
)
from neonpro.domain.vocabulary import AppointmentStatus as S
from neonpro.domain.vocabulary import CancellationReason, NoShowOutcome

TABLE = cast(Table, Appointment.__table__)
T = TABLE.c
P = cast(Table, Patient.__table__).c
PR = Professional.__table__.c
ST = ServiceType.__table__.c
NAME = "appointments"
ENCRYPTED = {
    "clinical_notes": "clinical_notes_encrypted",
    "internal_notes": "internal_notes_encrypted",
}
RISK = cast(Table, AppointmentRiskScore.__table__)
RS = RISK.c
# the prediction is read from the side table (scoring never writes the appointment row)
SCORED = {"no_show_risk_score": RS.score, "no_show_model_version": RS.model_version,
          "no_show_risk_factors": RS.factors, "no_show_predicted_at": RS.predicted_at}


def _scored(name: str) -> Any:
    """The latest recorded prediction's ``name`` for the row at hand (a primary-key probe)."""
    return (select(SCORED[name]).where(RS.clinic_id == T.clinic_id, RS.appointment_id == T.id)
            .correlate(TABLE).scalar_subquery().label(name))


READ_COLUMNS = [_scored(f) if f in SCORED else T[f] for f in READ_FIELDS
                if f not in ENCRYPTED] + [T[c] for c in ENCRYPTED.values()]
# what a write returns before its score is joined (the row's own columns only)
ROW_COLUMNS = [T[f] for f in READ_FIELDS if f not in ENCRYPTED and f not in SCORED] + [
    T[c] for c in ENCRYPTED.values()]


def _returning_scored(statement: Insert | Update, clinic: str) -> Select[Any]:
    """``statement`` as ``WITH written AS (... RETURNING row) SELECT row, its score``.

    A scalar subquery in ``INSERT ... RETURNING`` is not correlated by SQLAlchemy: it
    rendered ``FROM appointment_risk_scores, appointments`` and, once a clinic had two
    scores, every booking failed with "more than one row returned by a subquery" (with
    one score it returned another appointment's). Joining the written row to its own
    score by primary key cannot read anyone else's, for inserts and updates alike.
    """
    written = statement.returning(*ROW_COLUMNS).cte("written")
    w = written.c
    # the scores of the statement's clinic, named by value: Citus then plans the join on
    # one shard (joined on the written row's column alone, its coordinator crashed, Citus
    # 13.2.2; the value in the join's condition, it refuses an outer join on PG 15 and 16)
    scores = select(RISK).where(RS.clinic_id == bindparam(clinic)).subquery("scores")
    s = scores.c
    columns = [s[SCORED[f].key].label(f) if f in SCORED else w[f] for f in READ_FIELDS
               if f not in ENCRYPTED] + [w[c] for c in ENCRYPTED.values()]
    return select(*columns).select_from(written.outerjoin(
        scores, and_(s.clinic_id == w.clinic_id, s.appointment_id == w.id)))

_BY_ID = and_(T.clinic_id == bindparam("b_clinic"), T.id == bindparam("b_id"))
# a booking's statements and every change's: compiled once, run on the driver, hot.py
GET = HotStatement(select(*READ_COLUMNS).where(_BY_ID))
TIME_ZONE = HotStatement(select(Clinic.__table__.c.timezone).where(
    Clinic.__table__.c.id == bindparam("b_clinic")))
_BLOCKING = select(T.start_time, T.end_time).where(
    T.clinic_id == bindparam("b_clinic"), T.professional_id == bindparam("b_professional"),
    T.status.in_([s.value for s in BLOCKING]),
    T.start_time < bindparam("b_end", type_=T.start_time.type),
    T.end_time > bindparam("b_start", type_=T.end_time.type))
BLOCKING_SLOTS = HotStatement(_BLOCKING)
BLOCKING_SLOTS_BUT = HotStatement(_BLOCKING.where(T.id != bindparam("b_exclude")))


@functools.lru_cache(maxsize=256)
def _insert(columns: tuple[str, ...]) -> HotStatement:
    """The booking INSERT for one set of columns (those a booking gives: the others keep
    their defaults), its values bound as ``v_<column>``: built once per set, not per
    booking (building the statement and its CTE was about 40 % of a booking's CPU)."""
    return HotStatement(_returning_scored(insert(TABLE).values(value_binds(TABLE, columns)),
                                          "v_clinic_id"))


@functools.lru_cache(maxsize=256)
def _update(columns: tuple[str, ...], status_from: tuple[str, ...]) -> HotStatement:
    """A versioned UPDATE of ``columns`` (bound as ``v_<column>``), built once per shape."""
    statement = update(TABLE).where(_BY_ID, T.version == bindparam("b_version")).values(
        {**value_binds(TABLE, columns), T.version: T.version + 1})
    if status_from:
        statement = statement.where(T.status.in_(status_from))
    return HotStatement(_returning_scored(statement, "b_clinic"))

DELETABLE = frozenset({S.SCHEDULED, S.CONFIRMED, S.CANCELLED})

CALENDAR_COLUMNS = (
    T.id, T.start_time, T.end_time, T.status, T.appointment_type, T.patient_id,
    P.full_name.label("patient_name"), T.professional_id,
    PR.full_name.label("professional_name"), T.service_type_id,
    ST.name.label("service_name"), T.version, _scored("no_show_risk_score"),
)


class SqlAppointmentRepository(SqlRepository):
    __slots__ = ()

    # ------------------------------------------------------------ mapping
    def _encrypt(self, appointment_id: uuid.UUID, fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in fields.items():
            column = ENCRYPTED.get(name)
            if column is None:
                out[name] = value
            else:
                out[column] = self._uow.cipher.encrypt_optional(
                    value, table=NAME, column=column, row_id=appointment_id
                )
        return out

    def _to_read(self, row: Any) -> AppointmentRead:
        """A row (SQLAlchemy's, or a hot statement's dict) as the domain's appointment."""
        data = row if isinstance(row, dict) else dict(row._mapping)  # noqa: SLF001
        for name, column in ENCRYPTED.items():
            data[name] = self._uow.cipher.decrypt_optional(
                data.pop(column), table=NAME, column=column, row_id=data["id"]
            )
        return AppointmentRead.model_construct(**data)

    # ------------------------------------------------------------ reads
    def get(self, appointment_id: uuid.UUID) -> AppointmentRead:
        rows = self._fetch(GET, {"b_clinic": self.clinic_id, "b_id": appointment_id})
        if not rows:
            raise NotFound("appointment", appointment_id)
        return self._to_read(rows[0])

    def clinic_time_zone(self) -> str:
        rows = self._fetch(TIME_ZONE, {"b_clinic": self.clinic_id})
        if not rows:
            raise NotFound("clinic", self.clinic_id)
        return str(rows[0]["timezone"])

    def blocking_slots(self, professional_id: uuid.UUID, window: Window,
                       exclude: uuid.UUID | None = None) -> list[Slot]:
        """The professional's appointments that block time and touch ``window``."""
        params = {"b_clinic": self.clinic_id, "b_professional": professional_id,
                  "b_start": window.start, "b_end": window.end}
        statement = BLOCKING_SLOTS
        if exclude is not None:
            statement, params["b_exclude"] = BLOCKING_SLOTS_BUT, exclude
        return [Slot(r["start_time"], r["end_time"]) for r in self._fetch(statement, params)]

    def list_for_patient(self, patient_id: uuid.UUID,
                         page: PageRequest | None = None) -> Page[AppointmentRead]:
        return self._page(AppointmentFilters(patient_id=patient_id), page or PageRequest())

    def list_for_professional(self, professional_id: uuid.UUID, window: Window,
                              page: PageRequest | None = None) -> Page[AppointmentRead]:
        filters = AppointmentFilters(professional_id=professional_id, window=window)
        return self._page(filters, page or PageRequest(limit=200))

    def _conditions(self, f: AppointmentFilters) -> list[Any]:
        out: list[Any] = [T.clinic_id == self.clinic_id]
        if f.patient_id is not None:
            out.append(T.patient_id == f.patient_id)
        if f.professional_id is not None:
            out.append(T.professional_id == f.professional_id)
        if f.window is not None:
            out += [T.start_time < f.window.end, T.end_time > f.window.start]
        if f.status:
            out.append(T.status.in_([s.value for s in f.status]))
        return out

    def _page(self, filters: AppointmentFilters, page: PageRequest) -> Page[AppointmentRead]:
        where = self._conditions(filters)
        query = (select(*READ_COLUMNS).where(*where).order_by(T.start_time, T.id)
                 .limit(page.limit).offset(page.offset))
        items = [self._to_read(r) for r in self._execute(query)]
        total = None
        if page.with_total:
            count = select(func.count()).select_from(TABLE).where(*where)
            total = self._execute(count).scalar_one()
        return Page(items, total, None, page.limit, page.offset)

    def calendar(self, window: Window, professional_id: uuid.UUID | None = None,
                 statuses: tuple[S, ...] = ()) -> list[CalendarEntry]:
        """Appointments in ``window`` with patient, professional and service names: one query."""
        filters = AppointmentFilters(status=statuses, window=window,
                                     professional_id=professional_id)
        query = (
            select(*CALENDAR_COLUMNS)
            .join(Patient.__table__, and_(P.clinic_id == T.clinic_id, P.id == T.patient_id))
            .join(Professional.__table__,
                  and_(PR.clinic_id == T.clinic_id, PR.id == T.professional_id))
            .outerjoin(ServiceType.__table__,
                       and_(ST.clinic_id == T.clinic_id, ST.id == T.service_type_id))
            .where(*self._conditions(filters))
            .order_by(T.start_time, T.id)
        )
        return [CalendarEntry.model_construct(**r._mapping) for r in self._execute(query)]  # noqa: SLF001

    # ------------------------------------------------------------ writes
    def add(self, data: AppointmentCreate, *, time_zone: str,
            booked_at: datetime | None = None) -> AppointmentRead:
        """Insert a booking. ``booked_at`` (imports, the demo generator; never the API) is
        when the booking was made in the source, kept as ``created_at``: lead time is
        ``start_time - created_at``."""
        appointment_id = uuid.uuid4()
        values = self._encrypt(appointment_id, data.model_dump(exclude_none=True))
        actor = self._uow.actor.id
        values.update(id=appointment_id, clinic_id=self.clinic_id, time_zone=time_zone,
                      created_by=actor, updated_by=actor, **_booked(booked_at, data.start_time))
        return self._to_read(self._fetch(_insert(tuple(sorted(values))), bound_values(values))[0])

    def update(self, appointment_id: uuid.UUID, data: AppointmentUpdate) -> AppointmentRead:
        return self._change(appointment_id, data.version, self._encrypt(appointment_id,
                                                                         data.changes()))

    def _change(self, appointment_id: uuid.UUID, version: int, values: dict[str, Any],
                *, status_from: tuple[str, ...] = ()) -> AppointmentRead:
        values = {**values, "updated_by": self._uow.actor.id}
        rows = self._fetch(_update(tuple(sorted(values)), status_from), {
            "b_clinic": self.clinic_id, "b_id": appointment_id, "b_version": version,
            **bound_values(values)})
        if not rows:
            current = self.get(appointment_id)  # NotFound if it is not there
            raise StaleVersion("appointment", appointment_id, version) if (
                current.version != version) else Conflict("appointment changed status")
        return self._to_read(rows[0])

    def _transition(self, appointment_id: uuid.UUID, version: int, target: S,
                    values: dict[str, Any] | None = None) -> AppointmentRead:
        current = self.get(appointment_id)
        if current.version != version:
            raise StaleVersion("appointment", appointment_id, version)
        check_transition(current.status, target)
        return self._change(appointment_id, version, {"status": target.value, **(values or {})},
                            status_from=(current.status,))

    def confirm(self, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
        now = datetime.now(UTC)
        return self._transition(appointment_id, version, S.CONFIRMED,
                                {"patient_confirmed": True, "patient_confirmed_at": now})

    def check_in(self, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
        current = self.get(appointment_id)
        if current.status not in (S.SCHEDULED, S.CONFIRMED):
            raise Conflict(f"cannot check in an appointment that is {current.status}", "status")
        return self._change(appointment_id, version, {"check_in_time": datetime.now(UTC)})

    def start(self, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
        now = datetime.now(UTC)
        current = self.get(appointment_id)
        waiting = None
        if current.check_in_time is not None:
            waiting = max(0, int((now - current.check_in_time).total_seconds() // 60))
        return self._transition(appointment_id, version, S.IN_PROGRESS,
                                {"actual_start_time": now, "waiting_minutes": waiting})

    def complete(self, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
        now = datetime.now(UTC)
        done = self._transition(appointment_id, version, S.COMPLETED, {
            "actual_end_time": now, "check_out_time": now,
            "no_show_actual_outcome": NoShowOutcome.ATTENDED.value,
        })
        self._count_for_patient(done.patient_id, visit=done.start_time.date())
        return done

    def mark_no_show(self, appointment_id: uuid.UUID, version: int) -> AppointmentRead:
        missed = self._transition(appointment_id, version, S.NO_SHOW,
                                  {"no_show_actual_outcome": NoShowOutcome.NO_SHOW.value})
        self._count_for_patient(missed.patient_id, no_show=missed.start_time.date())
        return missed

    def cancel(self, appointment_id: uuid.UUID, data: Cancel) -> AppointmentRead:
        return self._transition(appointment_id, data.version, S.CANCELLED, {
            "cancelled_at": datetime.now(UTC), "cancelled_by": self._uow.actor.id,
            "cancellation_reason": CancellationReason(data.reason).value,
            "cancellation_fee": data.fee, "no_show_actual_outcome": NoShowOutcome.CANCELLED.value,
        })

    def reschedule(self, appointment_id: uuid.UUID, data: Reschedule, *,
                   booked_at: datetime | None = None) -> AppointmentRead:
        """Mark the original ``rescheduled`` (it stops blocking) and book the new window
        linked to it; the exclusion constraint re-checks the overlap on the insert."""
        old = self._transition(appointment_id, data.version, S.RESCHEDULED)
        now = datetime.now(UTC)
        new_id = uuid.uuid4()
        keep = {f: getattr(old, f) for f in COPIED_ON_RESCHEDULE}
        values = self._encrypt(new_id, {
            **keep, "clinical_notes": old.clinical_notes, "internal_notes": old.internal_notes,
        })
        actor = self._uow.actor.id
        values.update(
            id=new_id, clinic_id=self.clinic_id, start_time=data.start_time,
            end_time=data.end_time, status=S.SCHEDULED.value, rescheduled_from_id=old.id,
            reschedule_count=old.reschedule_count + 1, last_rescheduled_at=now,
            rescheduling_reason=data.reason, created_by=actor, updated_by=actor,
            **_booked(booked_at, data.start_time),
        )
        return self._to_read(self._fetch(_insert(tuple(sorted(values))), bound_values(values))[0])

    def delete(self, appointment_id: uuid.UUID, version: int) -> None:
        """Remove a booking made in error; anything that happened stays (clinical record)."""
        current = self.get(appointment_id)
        if current.version != version:
            raise StaleVersion("appointment", appointment_id, version)
        if S(current.status) not in DELETABLE or current.actual_start_time is not None:
            raise Conflict("only appointments that never took place can be deleted", "status")
        self._execute(delete(TABLE).where(_BY_ID, T.version == version),
                      {"b_clinic": self.clinic_id, "b_id": appointment_id})

    def _count_for_patient(self, patient_id: uuid.UUID, *, visit: date | None = None,
                           no_show: date | None = None) -> None:
        """System-managed counters; no version bump, so staff edits never conflict with them."""
        values: dict[str, Any] = {"total_appointments": P.total_appointments + 1}
        if visit is not None:
            values["last_visit_date"] = func.greatest(P.last_visit_date, visit)
        if no_show is not None:
            values["total_no_shows"] = P.total_no_shows + 1
            values["last_no_show_date"] = func.greatest(P.last_no_show_date, no_show)
        self._execute(update(cast(Table, Patient.__table__)).where(
            P.clinic_id == self.clinic_id, P.id == patient_id).values(**values))


def _booked(booked_at: datetime | None, start: datetime) -> dict[str, datetime]:
    if booked_at is None:
        return {}
    if booked_at.tzinfo is None or booked_at > start:
        raise ValidationFailed("booked_at", "must be timezone-aware and not after the start")
    return {"created_at": booked_at}


COPIED_ON_RESCHEDULE = (
    "patient_id", "professional_id", "service_type_id", "time_zone", "appointment_type",
    "priority", "room_id", "location", "chief_complaint", "tuss_code", "tuss_procedure_name",
    "notes", "estimated_cost", "copay_amount", "insurance_covered", "prior_auth_required",
    "prior_auth_number", "prior_auth_status",
)
