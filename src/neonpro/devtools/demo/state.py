"""The state of one run: the random sources, the calendar in memory, the ids created so far."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from neonpro.bootstrap import Container
from neonpro.devtools.demo import people
from neonpro.devtools.demo.model import LEAD_MIX
from neonpro.devtools.demo.reference import ACTOR, ZONE, ClinicTemplate
from neonpro.devtools.demo.result import DemoResult, Outcome, ProgressFn
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.schemas.appointment import AppointmentRead
from neonpro.domain.vocabulary import AppointmentStatus


@dataclass(slots=True)
class Prof:
    id: uuid.UUID
    index: int
    clinic: int
    specialty: str
    start: int  # minutes
    end: int
    break_start: int
    break_end: int
    buffer: int
    max_daily: int
    saturdays: bool
    room: str


@dataclass(slots=True)
class PatientState:
    id: uuid.UUID
    index: int
    clinic: int
    prof: int
    z: float
    preferred: int  # preferred start minute
    no_shows: int = 0
    attended: int = 0
    last_visit: int | None = None


@dataclass(slots=True)
class Booking:
    appointment: AppointmentRead
    patient: int
    prof: int
    day: int
    start: int
    minutes: int
    service: str
    booked: datetime  # when the booking was made (stored as the appointment's created_at)
    reschedules: int = 0


def minutes_of(t: time) -> int:
    return t.hour * 60 + t.minute



class Run:
    """One run: the random source, the calendar in memory, the ids created so far.

    The seeding steps are mixins over this state (:mod:`.staff`, :mod:`.patients`,
    :mod:`.calendar`, :mod:`.history`), put together in :mod:`.seed`."""

    def __init__(self, container: Container, *, patients: int, seed: int, months: int,
                 today: date, progress: ProgressFn | None) -> None:
        self.box = container
        self.rng = random.Random(seed)  # noqa: S311  (synthetic data, not security)
        # lead times from their own stream: the other choices keep their sequence
        self.lead_rng = random.Random(f"lead:{seed}")  # noqa: S311
        # the seeding moment: no booking is made after it
        self.clock = min(datetime.now(ZONE),
                         datetime.combine(today + timedelta(days=1), time.min, tzinfo=ZONE))
        self.seed = seed
        self.n_patients = patients
        self.progress = progress or (lambda _phase, _done, _total: None)
        self.today = today
        self.history_days = round(months * 365 / 12)
        self.future_days = min(28, max(7, self.history_days // 6))
        self.first_day = today - timedelta(days=self.history_days)
        self.clinic_ids: list[uuid.UUID] = []
        self.user_ids: list[uuid.UUID] = []
        self.service_ids: list[dict[str, uuid.UUID]] = []
        self.profs: list[Prof] = []
        self.patients: list[PatientState] = []
        self.consents = 0
        self.appointments = 0
        self.skipped = 0
        self.busy: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self.pending: dict[int, list[Booking]] = {}
        self.outcomes: list[Outcome] = []
        self.cpfs: set[str] = set()
        self.cnss: set[str] = set()
        self.emails: set[str] = set()

    # ------------------------------------------------------------ helpers
    def uow(self, clinic: int) -> UnitOfWork:
        return self.box.uow(self.clinic_ids[clinic], ACTOR)

    def date_of(self, day: int) -> date:
        return self.first_day + timedelta(days=day)

    def moment(self, day: int, minute: int) -> datetime:
        return datetime.combine(self.date_of(day), time(minute // 60, minute % 60), tzinfo=ZONE)

    def booking_moment(self, start: datetime) -> datetime:
        """When a booking for ``start`` was made: a lead drawn from :data:`LEAD_MIX`."""
        pick, acc = self.lead_rng.random(), 0.0
        low, high = LEAD_MIX[-1][1:]
        for share, a, b in LEAD_MIX:
            acc += share
            if pick < acc:
                low, high = a, b
                break
        lead = timedelta(days=self.lead_rng.uniform(low, high))
        return min(start - lead, self.clock, start)

    def staff_email(self, clinic: ClinicTemplate, given: str, family: str) -> str:
        local, n = people.email_local(given, family), 1
        while f"{local}{n if n > 1 else ''}" in self.emails:
            n += 1
        local = f"{local}{n if n > 1 else ''}"
        self.emails.add(local)
        return f"{local}@{clinic.slug}-demo{self.seed}.example.com"

    def record(self, b: Booking, status: AppointmentStatus) -> None:
        self.outcomes.append((b.day - self.history_days, b.start, self.patients[b.patient].clinic,
                              b.prof, b.patient, status.value, b.reschedules))

    # ------------------------------------------------------------ result
    def result(self, months: int, seconds: float) -> DemoResult:
        statuses: dict[str, int] = {s.value: 0 for s in AppointmentStatus}
        for outcome in self.outcomes:
            statuses[outcome[5]] += 1
        return DemoResult(
            seed=self.seed, months=months, first_day=self.first_day, today=self.today,
            last_day=self.date_of(max((o[0] for o in self.outcomes), default=0)
                                  + self.history_days),
            clinics=list(self.clinic_ids), users=list(self.user_ids),
            professionals=[p.id for p in self.profs],
            service_types=[i for ids in self.service_ids for i in ids.values()],
            patients=[p.id for p in self.patients], consents=self.consents,
            appointments=self.appointments, statuses=statuses, skipped_slots=self.skipped,
            seconds=seconds, outcomes=list(self.outcomes),
        )
