"""Demonstration data: synthetic clinics, staff, patients, consents and months of appointments.

Everything goes through the services, so booking rules, the overlap constraint, encryption
and blind indexes apply exactly as for real data. One ``random.Random(seed)`` drives every
choice: the same seed gives the same clinics, names, CPFs, counts and statuses (ids are
uuid4 from the repositories and differ). Dates are relative to ``today`` (the clinic's
local date when it runs, unless given): the history ends on the day it runs, so the
calendar shifts with that day while the sequence of choices does not.

Outcome model (a real, learnable signal for the no-show predictor). Each patient has a
latent unreliability ``z ~ N(0, 1)``. Appointments are resolved day by day in time order,
and a past appointment that is neither rescheduled nor cancelled is a no-show with
probability ``sigmoid(logit)`` where ``logit`` adds up:

- ``NS_BASE`` and ``NS_LATENT * z`` (so past no-shows reveal ``z``),
- ``NS_PRIOR * min(past no-shows, 3)`` (habit, on top of what ``z`` explains),
- ``NS_FIRST_VISIT`` when the patient never attended before,
- ``NS_RESCHEDULED`` when the appointment was moved (``reschedule_count > 0``),
- ``NS_LONG_GAP`` when the last attended visit is more than ``LONG_GAP_DAYS`` ago,
- a small weekday effect (Monday, Friday, Saturday) and hour effect (before 09:00, from
  17:00), and ``NS_CONFIRMED`` when the patient confirmed (less likely to miss),
- ``NS_LEAD * (log1p(lead days) - log1p(LEAD_PIVOT_DAYS))``: bookings made long in
  advance are missed more often, same-week ones less.

Lead time is real data, not a label: each booking gets a booking moment (a mix of
same-week, two-to-three-week and one-to-three-month leads from its own random stream,
never later than the seeding moment), and the scheduling service records it as the
appointment's ``created_at`` (its ``booked_at`` argument, meant for imports of past
bookings; the API never passes it). A reschedule is booked a few days before the original
slot. Cancellations, reschedules and confirmations also depend a little on ``z``. The other
times the repositories stamp (patient_confirmed_at, cancelled_at, actual start and end,
consent given_at) are the seeding time, not the appointment's: they carry no signal and
must not be used as features on demo data.
"""

from __future__ import annotations

import hashlib
import math
import random
import time as clock
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

import structlog

from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.errors import BookingRuleViolation, Conflict, DoubleBooking
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.schemas.appointment import (
    AppointmentCreate,
    AppointmentRead,
    Cancel,
    Reschedule,
)
from neonpro.domain.schemas.clinic import ClinicCreate, StaffUserCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.schemas.service_type import ServiceTypeCreate
from neonpro.domain.text import fold_for_search
from neonpro.domain.values import cnpj_check_digits, cns_is_valid, cpf_check_digits
from neonpro.domain.vocabulary import (
    AppointmentStatus,
    BloodType,
    CancellationReason,
    ClinicRole,
    CollectionMethod,
    ConsentPurpose,
    CouncilType,
    CouncilValidation,
    DataCategory,
    Gender,
    LegalBasis,
    MaritalStatus,
    PreferredContactMethod,
)
from neonpro.services import catalog, clinics, consents, patients, scheduling

log = structlog.get_logger(__name__)

ACTOR: Final = SystemActors.DEMO_SEED
ZONE_NAME: Final = "America/Sao_Paulo"
ZONE: Final = ZoneInfo(ZONE_NAME)
NO_LOGIN: Final = "!demo-no-login"  # not an argon2 hash: nobody can log in with it
MAX_PATIENTS: Final = 20_000
MAX_MONTHS: Final = 60
# what `neonpro serve --demo` (`./dev run`) loads: a year, so that its first clinic (the
# one it prints) has the history to fit a no-show model and evaluate it with the default
# 3-month hold-out (`neonpro noshow evaluate`); 60 patients over 3 months had none
RUN_DEMO_PATIENTS: Final = 120
RUN_DEMO_MONTHS: Final = 12
GRID: Final = 15  # minutes between candidate start times
SATURDAY: Final = 5
SATURDAY_CLOSE: Final = 12 * 60
CONFIRM_WINDOW_DAYS: Final = 3
PUSH_DAYS: Final = 7  # a visit that finds no slot moves up to this many days later
LONG_GAP_DAYS: Final = 120
MAX_PRIOR: Final = 3
EARLY: Final = 9 * 60
LATE: Final = 17 * 60

# --- the outcome model (see the module docstring) --------------------------------------
NS_BASE: Final = -2.4
NS_LATENT: Final = 1.0
NS_PRIOR: Final = 0.45
NS_FIRST_VISIT: Final = 0.5
NS_RESCHEDULED: Final = 0.45
NS_LONG_GAP: Final = 0.3
NS_CONFIRMED: Final = -0.5
NS_WEEKDAY: Final = (0.2, 0.0, 0.0, 0.0, 0.25, 0.35, 0.0)  # Monday .. Sunday
NS_EARLY: Final = 0.25
NS_LATE: Final = 0.3
NS_LEAD: Final = 0.8
LEAD_PIVOT_DAYS: Final = 7.0
LEAD_MIX: Final = ((0.3, 0.0, 3.0), (0.4, 3.0, 21.0), (0.3, 21.0, 75.0))  # share, days
CANCEL_BASE, CANCEL_LATENT = -2.9, 0.35
RESCHEDULE_BASE, RESCHEDULE_LATENT = -2.8, 0.4
CONFIRM_BASE, CONFIRM_LATENT = 0.8, -0.9

# --- fixed lists -----------------------------------------------------------------------
FEMALE: Final = (
    "Ana", "Maria", "Juliana", "Fernanda", "Camila", "Beatriz", "Larissa", "Patrícia",
    "Aline", "Mariana", "Gabriela", "Letícia", "Vanessa", "Renata", "Carolina", "Amanda",
    "Bruna", "Natália", "Luciana", "Adriana", "Cláudia", "Simone", "Tatiane", "Débora",
    "Isabela", "Rafaela", "Sandra", "Helena", "Lívia", "Yasmin", "Luana", "Priscila",
)  # fmt: skip
MALE: Final = (
    "João", "José", "Pedro", "Lucas", "Gabriel", "Rafael", "Felipe", "Bruno", "Gustavo",
    "Rodrigo", "Marcelo", "Thiago", "André", "Carlos", "Eduardo", "Fernando", "Ricardo",
    "Paulo", "Daniel", "Leonardo", "Mateus", "Vinícius", "Diego", "Antônio", "Francisco",
)  # fmt: skip
FAMILY: Final = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
    "Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes", "Soares",
    "Fernandes", "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento", "Andrade", "Moreira",
    "Nunes", "Marques", "Machado", "Mendes", "Freitas", "Cardoso", "Ramos", "Gonçalves",
    "Santana", "Teixeira", "Araújo", "Correia", "Cavalcanti", "Monteiro", "Moura",
)  # fmt: skip
PARTICLES: Final = ("da", "de", "dos")
ALLERGIES: Final = ("dipirona", "penicilina", "látex", "lidocaína", "iodo", "AAS", "níquel")
CONDITIONS: Final = ("hipertensão", "diabetes tipo 2", "hipotireoidismo", "asma", "rosácea")
MEDICATIONS: Final = ("losartana", "metformina", "levotiroxina", "anticoncepcional oral")
RELATIONS: Final = ("mãe", "pai", "cônjuge", "irmã", "irmão", "filha", "filho")
INSURERS: Final = ("Bradesco Saúde", "SulAmérica", "Amil", "Unimed", "Porto Seguro Saúde")
PLANS: Final = ("Básico", "Executivo", "Premium", "Enfermaria", "Apartamento")
EMAIL_DOMAINS: Final = ("example.com", "example.net", "example.org")  # reserved: no real inbox
COLORS: Final = ("#3B82F6", "#10B981", "#F59E0B", "#EF4444", "#8B5CF6", "#EC4899", "#14B8A6")
HOLIDAYS: Final = ((1, 1), (4, 21), (5, 1), (9, 7), (10, 12), (11, 2), (11, 15), (11, 20),
                   (12, 25))  # national fixed-date holidays: the clinics are closed
SHIFTS: Final = (  # work start, work end, break start, break end
    (time(8), time(18), time(12), time(13)),
    (time(9), time(19), time(13), time(14)),
    (time(7, 30), time(16, 30), time(11, 30), time(12, 30)),
)
COMPLAINTS: Final = ("manchas no rosto", "acne", "flacidez", "rugas de expressão",
                     "queda de cabelo", "avaliação de rotina")


@dataclass(frozen=True, slots=True)
class City:
    name: str
    uf: str
    ddds: tuple[str, ...]
    cep_range: tuple[int, int]
    streets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClinicTemplate:
    name: str
    legal_name: str
    slug: str
    city: City
    specialties: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    minutes: int
    price: str
    category: str
    tuss: tuple[str, str] | None = None  # (code, procedure name)


@dataclass(frozen=True, slots=True)
class Specialty:
    label: str
    council: CouncilType
    first: str  # the service of a first visit
    repeat: tuple[str, ...]  # the services of later visits
    interval_days: int  # typical days between visits


SAO_PAULO = City("São Paulo", "SP", ("11", "11", "11", "12", "13", "19"), (1_000_000, 5_999_999), (
    "Rua Augusta", "Avenida Paulista", "Rua Oscar Freire", "Rua Haddock Lobo", "Alameda Santos",
    "Rua da Consolação", "Rua Vergueiro", "Rua Teodoro Sampaio", "Rua Cardeal Arcoverde"))
RIO = City("Rio de Janeiro", "RJ", ("21", "21", "21", "22", "24"), (20_000_000, 23_799_999), (
    "Rua Visconde de Pirajá", "Avenida Atlântica", "Rua Barata Ribeiro", "Rua São Clemente",
    "Rua Voluntários da Pátria", "Avenida das Américas", "Rua Conde de Bonfim"))
BELO_HORIZONTE = City("Belo Horizonte", "MG", ("31", "31", "31", "32", "35", "37"),
                      (30_000_000, 31_999_999), (
    "Avenida Afonso Pena", "Rua da Bahia", "Avenida do Contorno", "Rua Pernambuco",
    "Rua Sergipe", "Avenida Getúlio Vargas", "Rua Professor Morais", "Rua Paraíba"))

CLINICS: Final = (
    ClinicTemplate("Clínica Bella Pele", "Bella Pele Dermatologia e Estética Ltda", "bellapele",
                   SAO_PAULO, ("derma", "biomed", "hof", "fisio")),
    ClinicTemplate("Instituto Carioca de Estética", "Instituto Carioca de Estética e Saúde Ltda",
                   "institutocarioca", RIO, ("derma", "biomed", "nutri")),
    ClinicTemplate("Espaço Vitta Savassi", "Vitta Savassi Clínica de Estética Ltda",
                   "vittasavassi", BELO_HORIZONTE, ("derma", "hof", "fisio")),
)

SERVICES: Final = {s.name: s for s in (
    Service("Consulta dermatológica", 30, "380.00", "consulta",
            ("10101012", "Consulta em consultório (no horário normal ou preestabelecido)")),
    Service("Retorno dermatológico", 20, "0.00", "consulta"),
    Service("Peeling químico", 45, "320.00", "procedimento estético"),
    Service("Toxina botulínica (botox)", 30, "1200.00", "injetáveis"),
    Service("Preenchimento com ácido hialurônico", 45, "1800.00", "injetáveis"),
    Service("Limpeza de pele", 60, "180.00", "estética facial"),
    Service("Microagulhamento", 60, "450.00", "estética facial"),
    Service("Avaliação de harmonização orofacial", 30, "150.00", "consulta"),
    Service("Drenagem linfática", 60, "150.00", "estética corporal"),
    Service("Radiofrequência", 45, "220.00", "estética corporal"),
    Service("Consulta nutricional", 45, "300.00", "consulta"),
    Service("Retorno nutricional", 30, "150.00", "consulta"),
)}

SPECIALTIES: Final = {
    "derma": Specialty("Dermatologia", CouncilType.CRM, "Consulta dermatológica", (
        "Retorno dermatológico", "Peeling químico", "Toxina botulínica (botox)",
        "Preenchimento com ácido hialurônico"), 60),
    "biomed": Specialty("Biomedicina estética", CouncilType.CRBM, "Limpeza de pele", (
        "Limpeza de pele", "Microagulhamento", "Peeling químico"), 35),
    "hof": Specialty("Harmonização orofacial", CouncilType.CRO,
                     "Avaliação de harmonização orofacial", (
        "Toxina botulínica (botox)", "Preenchimento com ácido hialurônico"), 90),
    "fisio": Specialty("Fisioterapia dermatofuncional", CouncilType.CREFITO,
                       "Drenagem linfática", ("Drenagem linfática", "Radiofrequência"), 25),
    "nutri": Specialty("Nutrição", CouncilType.CRN, "Consulta nutricional",
                       ("Retorno nutricional",), 40),
}

TERMS: Final = {
    ConsentPurpose.TREATMENT: (
        "tratamento-v1",
        "Autorizo a clínica a tratar meus dados pessoais e de saúde para a prestação dos "
        "serviços de saúde contratados, nos termos do art. 11, II, f da LGPD.",
    ),
    ConsentPurpose.MARKETING: (
        "marketing-v1",
        "Aceito receber comunicações sobre novidades, promoções e campanhas da clínica por "
        "WhatsApp, SMS ou e-mail. Posso revogar este consentimento a qualquer momento.",
    ),
}


# --- results ---------------------------------------------------------------------------

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phases are ``patients`` and ``appointments``."""

Outcome = tuple[int, int, int, int, int, str, int]
"""(day relative to today, start minute, clinic, professional, patient, status, reschedules)."""


class DemoSeedExists(Conflict):
    """The clinics of this seed are already there (their CNPJs are taken)."""

    def __init__(self, seed: int) -> None:
        super().__init__(f"demo data for seed {seed} already exists; use another --seed",
                         "cnpj")
        self.seed = seed


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What one run created. ``outcomes`` is the run's deterministic fingerprint."""

    seed: int
    months: int
    first_day: date
    today: date
    last_day: date
    clinics: list[uuid.UUID]
    users: list[uuid.UUID]
    professionals: list[uuid.UUID]
    service_types: list[uuid.UUID]
    patients: list[uuid.UUID]
    consents: int
    appointments: int
    statuses: dict[str, int]
    skipped_slots: int
    seconds: float
    outcomes: list[Outcome] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """Ids as strings, counts, the date range (no personal data)."""
        return {
            "seed": self.seed, "months": self.months,
            "from": self.first_day.isoformat(), "today": self.today.isoformat(),
            "to": self.last_day.isoformat(),
            "clinics": [str(i) for i in self.clinics], "users": [str(i) for i in self.users],
            "professionals": [str(i) for i in self.professionals],
            "service_types": [str(i) for i in self.service_types],
            "patients": [str(i) for i in self.patients], "consents": self.consents,
            "appointments": self.appointments, "statuses": self.statuses,
            "skipped_slots": self.skipped_slots, "seconds": round(self.seconds, 2),
        }


# --- identifiers -----------------------------------------------------------------------


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def demo_cnpj(seed: int, branch: int) -> str:
    """The CNPJ of a demo clinic: one company root per seed, one branch per clinic."""
    digest = hashlib.sha256(f"neonpro-demo:{seed}".encode()).hexdigest()
    twelve = f"{int(digest, 16) % 10**8:08d}{branch:04d}"
    return twelve + cnpj_check_digits(twelve)


def _cpf(rng: random.Random, used: set[str]) -> str:
    while True:
        nine = f"{rng.randrange(1, 10**9):09d}"
        number = nine + cpf_check_digits(nine)
        if len(set(number)) > 1 and number not in used:
            used.add(number)
            return number


def _cns(rng: random.Random, used: set[str]) -> str:
    """A provisional CNS (first digit 7, 8 or 9): the weighted sum is a multiple of 11."""
    while True:
        body = rng.choice("789") + f"{rng.randrange(10**13):013d}"
        last = -sum(int(d) * (15 - i) for i, d in enumerate(body)) % 11
        number = f"{body}{last}"
        if last < 10 and cns_is_valid(number) and number not in used:  # noqa: PLR2004
            used.add(number)
            return number


def _mobile(rng: random.Random, ddd: str) -> str:
    return f"{ddd}9{rng.randrange(6, 10)}{rng.randrange(10**7):07d}"


def _landline(rng: random.Random, ddd: str) -> str:
    return f"{ddd}{rng.randrange(2, 6)}{rng.randrange(10**7):07d}"


def _person(rng: random.Random) -> tuple[Gender, list[str], str, str]:
    """(gender, given names, family name, full name) from the fixed lists."""
    gender = Gender.FEMALE if rng.random() < 0.68 else Gender.MALE  # noqa: PLR2004
    pool = FEMALE if gender is Gender.FEMALE else MALE
    given = [rng.choice(pool)]
    if rng.random() < 0.3:  # noqa: PLR2004
        given.append(rng.choice(pool))
    first_family, family = rng.choice(FAMILY), rng.choice(FAMILY)
    middle = f"{rng.choice(PARTICLES)} " if rng.random() < 0.25 else ""  # noqa: PLR2004
    full = f"{' '.join(given)} {middle}{first_family} {family}".replace(
        f"{first_family} {first_family}", first_family)
    return gender, given, family, full


def _email_local(given: str, family: str) -> str:
    return f"{fold_for_search(given)}.{fold_for_search(family)}".replace(" ", "")


# --- runtime state ---------------------------------------------------------------------


@dataclass(slots=True)
class _Prof:
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
class _Patient:
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
class _Booking:
    appointment: AppointmentRead
    patient: int
    prof: int
    day: int
    start: int
    minutes: int
    service: str
    booked: datetime  # when the booking was made (stored as the appointment's created_at)
    reschedules: int = 0


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


class _Generator:
    """One run: the random source, the calendar in memory, the ids created so far."""

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
        self.profs: list[_Prof] = []
        self.patients: list[_Patient] = []
        self.consents = 0
        self.appointments = 0
        self.skipped = 0
        self.busy: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self.pending: dict[int, list[_Booking]] = {}
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
        local, n = _email_local(given, family), 1
        while f"{local}{n if n > 1 else ''}" in self.emails:
            n += 1
        local = f"{local}{n if n > 1 else ''}"
        self.emails.add(local)
        return f"{local}@{clinic.slug}-demo{self.seed}.example.com"

    # ------------------------------------------------------------ clinics and staff
    def create_clinics(self) -> None:
        count = 2 if self.n_patients < 300 else 3  # noqa: PLR2004
        for index, template in enumerate(CLINICS[:count]):
            self.create_clinic(index, template)

    def create_clinic(self, index: int, template: ClinicTemplate) -> None:
        rng = self.rng
        _, dpo_given, dpo_family, dpo_name = _person(rng)
        dpo_email = self.staff_email(template, dpo_given[0], dpo_family)
        try:
            clinic = clinics.create_clinic(self.box.service_uow(ACTOR), ClinicCreate(
                name=f"{template.name} (demo {self.seed})", legal_name=template.legal_name,
                cnpj=demo_cnpj(self.seed, index + 1), cnes_code=f"{rng.randrange(10**7):07d}",
                timezone=ZONE_NAME, dpo_name=dpo_name, dpo_email=dpo_email,
            ))
        except Conflict as exc:
            if exc.field == "cnpj":
                raise DemoSeedExists(self.seed) from None
            raise
        self.clinic_ids.append(clinic.id)
        self.add_staff(clinic.id, dpo_name, dpo_email, ClinicRole.DPO)
        for role in (ClinicRole.ADMIN, ClinicRole.RECEPTIONIST):
            _, given, family, full = _person(rng)
            self.add_staff(clinic.id, full, self.staff_email(template, given[0], family), role)
        self.service_ids.append(self.add_services(index, template))
        per_specialty = max(1, math.ceil(self.n_patients / len(CLINICS) / 150))
        for specialty in template.specialties:
            for _ in range(per_specialty):
                self.add_professional(index, template, specialty)

    def add_staff(self, clinic_id: uuid.UUID, name: str, email: str, role: ClinicRole) -> uuid.UUID:
        user, _ = clinics.add_staff_member(self.box.service_uow(ACTOR), clinic_id,
                                           StaffUserCreate(email=email, display_name=name,
                                                           password_hash=NO_LOGIN), role)
        self.user_ids.append(user.id)
        return user.id

    def add_services(self, clinic: int, template: ClinicTemplate) -> dict[str, uuid.UUID]:
        names: dict[str, None] = {}
        for key in template.specialties:
            spec = SPECIALTIES[key]
            names.update(dict.fromkeys((spec.first, *spec.repeat)))
        ids: dict[str, uuid.UUID] = {}
        for name in names:
            s = SERVICES[name]
            created = catalog.add_service_type(self.uow(clinic), ServiceTypeCreate(
                name=s.name, duration_minutes=s.minutes, price=Decimal(s.price),
                category=s.category, tuss_code=s.tuss[0] if s.tuss else None,
            ))
            ids[name] = created.id
        return ids

    def add_professional(self, clinic: int, template: ClinicTemplate, key: str) -> None:
        rng, spec = self.rng, SPECIALTIES[key]
        gender, given, family, full = _person(rng)
        email = self.staff_email(template, given[0], family)
        user = self.add_staff(self.clinic_ids[clinic], full, email, ClinicRole.PROFESSIONAL)
        shift = rng.choice(SHIFTS)
        buffer, max_daily = rng.choice((0, 10, 15)), rng.choice((12, 16, 20))
        saturdays = rng.random() < 0.4  # noqa: PLR2004
        title = "" if spec.council not in (CouncilType.CRM, CouncilType.CRO) else (
            "Dra. " if gender is Gender.FEMALE else "Dr. ")
        created = catalog.add_professional(self.uow(clinic), ProfessionalCreate(
            full_name=f"{title}{full}", user_id=user, specialization=spec.label,
            council_type=spec.council, council_license=f"{rng.randrange(10_000, 200_000)}",
            council_state=template.city.uf, council_validation=CouncilValidation.VALIDATED,
            license_expiry_date=self.today + timedelta(days=rng.randrange(400, 1500)),
            phone=_mobile(rng, template.city.ddds[0]), email=email,
            color=COLORS[len(self.profs) % len(COLORS)], work_start_time=shift[0],
            work_end_time=shift[1], break_start_time=shift[2], break_end_time=shift[3],
            can_work_weekends=saturdays, max_daily_appointments=max_daily,
            appointment_buffer_minutes=buffer,
        ))
        in_clinic = sum(1 for p in self.profs if p.clinic == clinic)
        self.profs.append(_Prof(
            created.id, len(self.profs), clinic, key, _minutes(shift[0]), _minutes(shift[1]),
            _minutes(shift[2]), _minutes(shift[3]), buffer, max_daily, saturdays,
            f"Sala {in_clinic + 1}",
        ))

    # ------------------------------------------------------------ patients
    def create_patients(self) -> None:
        n_clinics = len(self.clinic_ids)
        weights = (0.5, 0.3, 0.2)[:n_clinics]
        for index in range(self.n_patients):
            clinic = index if index < n_clinics else self.rng.choices(
                range(n_clinics), weights)[0]
            self.create_patient(index, clinic)
            self.progress("patients", index + 1, self.n_patients)

    def create_patient(self, index: int, clinic: int) -> None:
        rng = self.rng
        template = CLINICS[clinic]
        profs = [p for p in self.profs if p.clinic == clinic]
        prof = profs[min(int(rng.random() ** 1.3 * len(profs)), len(profs) - 1)]
        data = self.patient_data(index, template, prof)
        created = patients.register_patient(self.uow(clinic), data)
        preferred = rng.choice((8 * 60, 9 * 60, 10 * 60, 11 * 60, 14 * 60, 15 * 60, 16 * 60,
                                17 * 60, 18 * 60))
        self.patients.append(_Patient(created.id, index, clinic, prof.index,
                                      rng.gauss(0.0, 1.0), preferred))
        self.grant(clinic, created.id, ConsentPurpose.TREATMENT)
        if rng.random() < 0.45:  # noqa: PLR2004
            self.grant(clinic, created.id, ConsentPurpose.MARKETING)

    def patient_data(self, index: int, template: ClinicTemplate, prof: _Prof) -> PatientCreate:
        rng, city = self.rng, template.city
        gender, given, family, full = _person(rng)
        age_days = int(rng.triangular(18, 78, 38) * 365.25) + rng.randrange(365)
        ddd = rng.choice(city.ddds)
        emergency = _person(rng) if rng.random() < 0.5 else None  # noqa: PLR2004
        email = (f"{_email_local(given[0], family)}{rng.randrange(1, 100)}"
                 f"@{rng.choice(EMAIL_DOMAINS)}") if rng.random() < 0.85 else None  # noqa: PLR2004
        insured = rng.random() < 0.3  # noqa: PLR2004
        return PatientCreate(
            medical_record_number=f"{template.slug[:2].upper()}-{index + 1:06d}",
            full_name=full, given_names=given, family_name=family, gender=gender,
            birth_date=self.today - timedelta(days=age_days),
            marital_status=rng.choice(list(MaritalStatus)[:-1]),
            nationality="brasileira", cpf=_cpf(rng, self.cpfs), cns=_cns(rng, self.cnss),
            phone_primary=_mobile(rng, ddd),
            phone_secondary=_landline(rng, ddd) if rng.random() < 0.2 else None,  # noqa: PLR2004
            email=email, preferred_contact_method=rng.choices(
                list(PreferredContactMethod)[:4], (15, 10, 60, 15))[0],
            address_line1=f"{rng.choice(city.streets)}, {rng.randrange(1, 3000)}",
            address_line2=f"apto {rng.randrange(1, 30)}{rng.randrange(1, 5)}"
            if rng.random() < 0.4 else None,  # noqa: PLR2004
            city=city.name, state=city.uf, postal_code=f"{rng.randrange(*city.cep_range):08d}",
            country="BR",
            blood_type=rng.choice(list(BloodType)).value if rng.random() < 0.7 else None,  # noqa: PLR2004
            allergies=rng.sample(ALLERGIES, rng.randint(1, 2)) if rng.random() < 0.2 else [],  # noqa: PLR2004
            chronic_conditions=[rng.choice(CONDITIONS)] if rng.random() < 0.15 else [],  # noqa: PLR2004
            current_medications=[rng.choice(MEDICATIONS)] if rng.random() < 0.2 else [],  # noqa: PLR2004
            primary_professional_id=prof.id,
            insurance_provider=rng.choice(INSURERS) if insured else None,
            insurance_plan=rng.choice(PLANS) if insured else None,
            insurance_number=f"{rng.randrange(10**15):015d}" if insured else None,
            emergency_contact_name=emergency[3] if emergency else None,
            emergency_contact_phone=_mobile(rng, ddd) if emergency else None,
            emergency_contact_relationship=rng.choice(RELATIONS) if emergency else None,
            data_source="demo", registration_source="demo_seed",
        )

    def grant(self, clinic: int, patient_id: uuid.UUID, purpose: ConsentPurpose) -> None:
        version, text = TERMS[purpose]
        treatment = purpose is ConsentPurpose.TREATMENT
        consents.grant_consent(self.uow(clinic), ConsentCreate(
            patient_id=patient_id, purpose=purpose,
            legal_basis=LegalBasis.HEALTH_PROTECTION if treatment else LegalBasis.CONSENT,
            terms_version=version, terms_hash=hashlib.sha256(text.encode()).hexdigest(),
            collection_method=CollectionMethod.WRITTEN if treatment
            else CollectionMethod.ONLINE_FORM,
            evidence={"channel": "front_desk" if treatment else "online_form",
                      "source": "demo_seed"},
            data_categories=[DataCategory.IDENTIFICATION, DataCategory.CONTACT,
                             DataCategory.ADDRESS, DataCategory.CLINICAL] if treatment
            else [DataCategory.CONTACT, DataCategory.MARKETING],
        ))
        self.consents += 1

    # ------------------------------------------------------------ the plan
    def plan(self) -> list[tuple[int, int, int, str]]:
        """Every patient's wished visits: (day, start minute, patient, service), sorted."""
        rng, horizon = self.rng, self.history_days + self.future_days
        visits: list[tuple[int, int, int, str]] = []
        for p in self.patients:
            spec = SPECIALTIES[self.profs[p.prof].specialty]
            interval = spec.interval_days * rng.uniform(0.75, 1.5)
            early = rng.random() < 0.55  # noqa: PLR2004
            day = rng.randrange(min(45, horizon) if early else horizon)
            service = spec.first
            while day < horizon:
                start = p.preferred + rng.choice((-60, -30, 0, 0, 0, 30, 60))
                visits.append((day, start, p.index, service))
                if day >= self.history_days:
                    break  # one future appointment booked at most
                day += max(7, round(interval * rng.uniform(0.7, 1.3)))
                service = rng.choice(spec.repeat)
                if day >= self.history_days and rng.random() < 0.25:  # noqa: PLR2004
                    break  # the next visit is not booked yet
        visits.sort()
        return visits

    # ------------------------------------------------------------ the calendar
    def works(self, prof: _Prof, day: int) -> bool:
        when = self.date_of(day)
        weekday = when.weekday()
        if (when.month, when.day) in HOLIDAYS or weekday > SATURDAY:
            return False
        return weekday < SATURDAY or prof.saturdays

    def candidates(self, prof: _Prof, day: int, preferred: int, minutes: int) -> list[int]:
        if not self.works(prof, day):
            return []
        close = prof.end if self.date_of(day).weekday() < SATURDAY else min(prof.end,
                                                                              SATURDAY_CLOSE)
        grid = range(prof.start, close - minutes + 1, GRID)
        ordered = [m for m in grid if m >= preferred] + [m for m in reversed(grid)
                                                         if m < preferred]
        busy = self.busy.get((prof.index, day), [])
        if len(busy) >= prof.max_daily:
            return []
        return [m for m in ordered if self.fits(prof, busy, m, m + minutes)]

    @staticmethod
    def fits(prof: _Prof, busy: list[tuple[int, int]], start: int, end: int) -> bool:
        if start < prof.break_end and prof.break_start < end:
            return False
        return all(not (start < e + prof.buffer and s < end + prof.buffer) for s, e in busy)

    def occupy(self, prof: int, day: int, start: int, end: int) -> None:
        self.busy.setdefault((prof, day), []).append((start, end))

    def free(self, b: _Booking) -> None:
        self.busy[(b.prof, b.day)].remove((b.start, b.start + b.minutes))

    def book(self, day: int, preferred: int, patient: _Patient, service: str) -> _Booking | None:
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
                return _Booking(created, patient.index, prof.index, when, start, s.minutes,
                                service, booked)
        return None

    def move(self, b: _Booking) -> _Booking | None:
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
                return _Booking(moved, b.patient, b.prof, when, start, b.minutes, b.service,
                                min(asked, self.moment(when, start)), b.reschedules + 1)
        return None

    # ------------------------------------------------------------ outcomes
    def record(self, b: _Booking, status: AppointmentStatus) -> None:
        self.outcomes.append((b.day - self.history_days, b.start, self.patients[b.patient].clinic,
                              b.prof, b.patient, status.value, b.reschedules))

    def no_show_logit(self, p: _Patient, b: _Booking, *, confirmed: bool) -> float:
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

    def resolve(self, b: _Booking) -> None:
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


def seed_demo(container: Container, *, patients: int = 200, seed: int = 42, months: int = 12,
              progress: ProgressFn | None = None, today: date | None = None) -> DemoResult:
    """Create demonstration clinics, staff, patients, consents and appointments.

    Args:
        container: where to write (each service call is its own transaction).
        patients: how many patients (1 to ``MAX_PATIENTS``); 300 or more get a third clinic.
        seed: the random seed; a seed whose clinics exist raises :class:`DemoSeedExists`.
        months: months of appointment history before ``today`` (1 to ``MAX_MONTHS``);
            up to four weeks of future appointments are added.
        progress: called as ``progress(phase, done, total)``.
        today: the last day of the history (default: today in São Paulo).

    Raises:
        ValueError: a size out of range.
        DemoSeedExists: this seed's demo clinics are already in the database.
    """
    if not 1 <= patients <= MAX_PATIENTS:
        raise ValueError(f"patients must be between 1 and {MAX_PATIENTS}")
    if not 1 <= months <= MAX_MONTHS:
        raise ValueError(f"months must be between 1 and {MAX_MONTHS}")
    if seed < 0:
        raise ValueError("seed must not be negative")
    started = clock.perf_counter()
    gen = _Generator(container, patients=patients, seed=seed, months=months,
                     today=today or datetime.now(ZONE).date(), progress=progress)
    gen.create_clinics()
    gen.create_patients()
    gen.create_appointments()
    result = gen.result(months, clock.perf_counter() - started)
    log.debug("demo_seeded", seed=seed, clinics=len(result.clinics),
              patients=len(result.patients), appointments=result.appointments,
              seconds=round(result.seconds, 1))
    return result
