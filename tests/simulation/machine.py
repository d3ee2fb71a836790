"""The whole-clinic simulation: a Hypothesis state machine that drives the HTTP API.

Two fresh clinics per example live side by side: staff register and correct patients,
create professionals and service types, book, reschedule, confirm, cancel, check in,
attend, miss, score the no-show risk (what ``neonpro noshow score`` runs), grant, regrant
and revoke consents for several purposes, start and join telemedicine sessions, open,
verify and fulfil data-subject requests, export (JSON and FHIR), erase, run retention
(what ``neonpro lgpd retention`` runs) and read as each role. A small reference model
holds what every acknowledged answer said; after every step the invariants compare the
API with it:

* no answer is a 5xx;
* every acknowledged write is there with the acknowledged version (patients, appointments);
* nothing of the other clinic is ever visible (ids, names) in any answer;
* the consent gate, the patient's consent summary, the confirmation (Art. 19), the JSON
  and FHIR exports agree with the ledger: the latest decision per patient and purpose wins;
* an erased or blocked patient's personal data never appears in any answer;
* each clinic's audit chain verifies;
* the calendar never holds two active overlapping appointments of one professional;
* every appointment the API returns carries its own no-show score (issue 13, defect 1);
* a staff member's token is refused from the request after they sign out, change their
  password or are removed; a stranger guessing passwords gets 401 or 429, nothing more.

The machine is driven by ``tests/simulation/test_whole_clinic.py`` (a short run in the
suite) and ``bench/simulate.py`` (a long run). Counters in :data:`STATS` say how many
steps ran and how many invariant checks passed.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import Engine, text

from neonpro.adapters.auth import hash_password
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.schemas.clinic import ClinicCreate, StaffUserCreate
from neonpro.domain.vocabulary import ClinicRole
from neonpro.services import clinics, noshow, retention
from tests.e2e.api_helpers import headers

SP = ZoneInfo("America/Sao_Paulo")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SYSTEM = SystemActors.CLI
RETENTION_JOB = Actor(uuid.UUID("00000000-0000-0000-0000-00000000051a"), "system")
ROLES = ("admin", "professional", "receptionist", "dpo")
PURPOSES = ("marketing", "telemedicine", "research", "image_use")
ACTIVE = frozenset({"scheduled", "confirmed", "in_progress"})
BLOCKING = frozenset({"scheduled", "confirmed", "in_progress", "completed"})
FINAL = frozenset({"completed", "cancelled", "no_show", "rescheduled"})
DAYS = 8  # bookings fall on the next DAYS days (from the day after tomorrow)
SLOTS = 20  # half hours from 08:00

# Invariants that fail today only because of an issue-13 defect another helper fixes.
# The check stays in place; an entry here turns its failure into a recorded "known" hit.
# The integrator empties this set once the fixes are merged.
# invariants a known, still open defect breaks (each with its defect): none today; an
# entry here turns the invariant's failure into a count, never a pass
KNOWN_OPEN: set[str] = set()


@dataclass
class Stats:
    steps: int = 0
    checks: int = 0
    requests: int = 0
    examples: int = 0
    known: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # "POST /consents 201": count

    def reset(self) -> None:
        self.steps = self.checks = self.requests = self.examples = 0
        self.known.clear()
        self.answers.clear()


STATS = Stats()


@dataclass
class World:
    """What the machine drives: the app's container, its in-process client, and an
    engine with the database owner's rights (only to read scores after a scoring run)."""

    box: Container
    client: TestClient
    owner: Engine


@dataclass
class PatientM:
    id: str
    name: str
    email: str
    phone: str
    version: int
    city: str | None = None
    erased: str | None = None  # anonymized | blocked


@dataclass
class AppointmentM:
    id: str
    patient: str
    professional: str
    start: datetime
    end: datetime
    status: str
    version: int
    remote: bool
    score: int | None = None
    hidden: bool = False  # its patient's record is blocked: no longer shown anywhere


@dataclass
class Decision:
    kind: str  # granted | revoked
    consent_id: str
    terms_version: str


@dataclass
class RequestM:
    id: str
    patient: str
    kind: str
    status: str = "open"
    verified: bool = False


@dataclass
class ClinicM:
    id: uuid.UUID
    tag: str  # in every name of this clinic: found in the other clinic's answers = a leak
    patients: dict[str, PatientM] = field(default_factory=dict)
    professionals: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    appointments: dict[str, AppointmentM] = field(default_factory=dict)
    ledger: dict[tuple[str, str], list[Decision]] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # appointment -> session
    requests: dict[str, RequestM] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)  # patients whose consents changed
    grant_seq: dict[str, int] = field(default_factory=dict)  # consent id -> grant order
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def live_patients(self) -> list[str]:
        return [p.id for p in self.patients.values() if p.erased is None]

    def active_purposes(self, patient: str) -> set[str]:
        return {purpose for (pid, purpose), d in self.ledger.items()
                if pid == patient and d and d[-1].kind == "granted"}

    def withdrawn_purposes(self, patient: str) -> set[str]:
        return {purpose for (pid, purpose), d in self.ledger.items()
                if pid == patient and d and d[-1].kind == "revoked"}

    def ids(self) -> set[str]:
        return ({str(self.id)} | set(self.patients) | set(self.appointments)
                | set(self.professionals) | set(self.services) | set(self.requests))


class Failure(AssertionError):
    """An invariant failed (named, so a known open defect can be told apart)."""


def day0() -> date:
    return datetime.now(SP).date() + timedelta(days=2)


def slot_window(day: int, slot: int, halves: int) -> tuple[datetime, datetime]:
    start = datetime.combine(day0() + timedelta(days=day), time(8), tzinfo=SP) + timedelta(
        minutes=30 * slot)
    return start, start + timedelta(minutes=30 * halves)


class ClinicSimulation(RuleBasedStateMachine):
    """One example: two fresh clinics, a sequence of clinic work, invariants after each."""

    world: ClassVar[World]
    audit_every: ClassVar[int] = 5  # the chain verification is the costliest invariant

    def __init__(self) -> None:
        super().__init__()
        STATS.examples += 1
        self.clinics: list[ClinicM] = []
        self.steps = 0
        self.touched: set[int] = {0, 1}  # clinics a rule worked in since the last check
        self.tokens: dict[tuple[uuid.UUID, str], dict[str, str]] = {}

    # ------------------------------------------------------------------ plumbing
    @property
    def client(self) -> TestClient:
        return self.world.client

    def h(self, c: ClinicM, role: str) -> dict[str, str]:
        """A development token per clinic and role (each is a session row: made once)."""
        key = (c.id, role)
        if key not in self.tokens:
            self.tokens[key] = headers(self.world.box, c.id, role)
        return self.tokens[key]

    def call(self, c: ClinicM, role: str, method: str, path: str, **kw: Any) -> Any:
        """One request as ``role`` of clinic ``c``; checks what every answer must hold."""
        STATS.requests += 1
        if method != "GET":
            self.touched.add(self.clinics.index(c))
        response = self.client.request(method, path, headers=self.h(c, role), **kw)
        self.check(response.status_code < 500,
                   "no_5xx", f"{method} {path} -> {response.status_code}: {response.text[:300]}")
        body = response.text
        STATS.answers[f"{method} {_UUID.sub('{id}', path)} {response.status_code}"] += 1
        other = self.other(c)
        for ident in other.ids() - {path.rsplit("/", 2)[-1], path.rsplit("/", 2)[-2]}:
            # (an id the caller sent may be echoed back in a 404)
            self.check(ident not in body, "other_clinic_invisible",
                       f"{method} {path} shows an id of the other clinic")
        self.check(other.tag not in body, "other_clinic_invisible",
                   f"{method} {path} shows a name of the other clinic")
        for clinic in self.clinics:
            for p in clinic.patients.values():
                if p.erased is not None:
                    for value in (p.name, p.email, p.phone):
                        self.check(value not in body, "erased_data_never_shown",
                                   f"{method} {path} shows personal data of a patient "
                                   f"{p.erased} ({p.id})")
        return response

    def check(self, ok: bool, name: str, message: str = "") -> None:
        STATS.checks += 1
        if ok:
            return
        if name in KNOWN_OPEN:
            STATS.known[name] += 1
            return
        raise Failure(f"[{name}] {message}")

    def other(self, c: ClinicM) -> ClinicM:
        return self.clinics[1] if c is self.clinics[0] else self.clinics[0]

    def expect(self, response: Any, statuses: tuple[int, ...], name: str) -> bool:
        self.check(response.status_code in statuses, name,
                   f"expected {statuses}, got {response.status_code}: {response.text[:300]}")
        return response.status_code in statuses

    # preconditions (Hypothesis then picks only rules that have something to act on)
    def any_appointment(self) -> bool:
        return any(c.appointments for c in self.clinics)

    def any_consent(self) -> bool:
        return any(c.ledger for c in self.clinics)

    def any_remote(self) -> bool:
        return any(a.remote for c in self.clinics for a in c.appointments.values())

    def any_session(self) -> bool:
        return any(c.sessions for c in self.clinics)

    def any_request(self) -> bool:
        return any(c.requests for c in self.clinics)

    # ------------------------------------------------------------------ setup
    @initialize()
    def open_two_clinics(self) -> None:
        for _ in range(2):
            tag = "Sim" + secrets.token_hex(3)
            cid = clinics.create_clinic(self.world.box.service_uow(SYSTEM),
                                        ClinicCreate(name=f"Clinica {tag}")).id
            c = ClinicM(cid, tag)
            self.clinics.append(c)
        for c in self.clinics:
            self._professional(c)
            self._patient(c)

    def _professional(self, c: ClinicM) -> None:
        r = self.call(c, "admin", "POST", "/professionals", json={
            "full_name": f"Dra {c.tag} {next(c.counter)}", "work_start_time": "07:00",
            "work_end_time": "20:00", "appointment_buffer_minutes": 0,
            "can_work_weekends": True, "max_daily_appointments": 60})
        if self.expect(r, (201,), "create_professional"):
            c.professionals.append(r.json()["id"])

    def _patient(self, c: ClinicM, role: str = "receptionist") -> None:
        n = next(c.counter)
        name = f"{c.tag} Paciente{n} Souza"
        email = f"{c.tag.lower()}.p{n}@sim.example"
        phone = f"(11) 9{secrets.randbelow(10**8):08d}"
        r = self.call(c, role, "POST", "/patients", json={
            "full_name": name, "email": email, "phone_primary": phone})
        if self.expect(r, (201,), "register_patient"):
            body = r.json()
            c.patients[body["id"]] = PatientM(body["id"], name, email, phone, body["version"])

    # ------------------------------------------------------------------ catalogue
    @rule(k=st.integers(0, 1))
    def register_patient(self, k: int) -> None:
        self._patient(self.clinics[k], role="receptionist" if k else "admin")

    @rule(k=st.integers(0, 1))
    def create_professional(self, k: int) -> None:
        c = self.clinics[k]
        if len(c.professionals) < 4:
            self._professional(c)

    @rule(k=st.integers(0, 1), minutes=st.sampled_from([30, 60]))
    def create_service_type(self, k: int, minutes: int) -> None:
        c = self.clinics[k]
        r = self.call(c, "admin", "POST", "/service-types", json={
            "name": f"Servico {next(c.counter)}", "duration_minutes": minutes})
        if self.expect(r, (201,), "create_service_type"):
            c.services.append(r.json()["id"])

    @rule(k=st.integers(0, 1), data=st.data(), stale=st.booleans())
    def correct_patient(self, k: int, data: st.DataObject, stale: bool) -> None:
        c = self.clinics[k]
        live = c.live_patients()
        if not live:
            return
        p = c.patients[data.draw(st.sampled_from(live))]
        city = data.draw(st.sampled_from(["Recife", "Olinda", "Natal"]))
        version = p.version - 1 if stale and p.version > 1 else p.version
        r = self.call(c, "receptionist", "PATCH", f"/patients/{p.id}",
                      json={"version": version, "city": city})
        if version != p.version:
            self.expect(r, (409,), "stale_write_refused")
            return
        if self.expect(r, (200,), "correct_patient"):
            body = r.json()
            self.check(body["version"] == p.version + 1, "acknowledged_version",
                       "a correction did not bump the version by one")
            p.version, p.city = body["version"], city

    # ------------------------------------------------------------------ scheduling
    def _overlaps(self, c: ClinicM, prof: str, start: datetime, end: datetime,
                  exclude: str | None = None) -> bool | None:
        """True: a shown booking holds the time; None: only a blocked patient's does."""
        hits = [a for a in c.appointments.values() if a.professional == prof
                and a.status in BLOCKING and a.id != exclude and a.start < end
                and start < a.end]
        if any(not a.hidden for a in hits):
            return True
        return None if hits else False

    @rule(k=st.integers(0, 1), data=st.data(), times=st.integers(1, 3))
    def book(self, k: int, data: st.DataObject, times: int) -> None:
        """One to three bookings (the desk's busiest work)."""
        for _ in range(times):
            self._book(self.clinics[k], data, data.draw(st.integers(0, DAYS - 1)),
                       data.draw(st.integers(0, SLOTS - 2)), data.draw(st.integers(1, 2)),
                       data.draw(st.booleans()))

    def _book(self, c: ClinicM, data: st.DataObject, day: int, slot: int, halves: int,
              remote: bool) -> None:
        live = c.live_patients()
        if not live or not c.professionals:
            return
        patient = data.draw(st.sampled_from(live))
        prof = data.draw(st.sampled_from(c.professionals))
        start, end = slot_window(day, slot, halves)
        body: dict[str, Any] = {"patient_id": patient, "professional_id": prof,
                                "start_time": start.isoformat(), "end_time": end.isoformat(),
                                "appointment_type": "telemedicine" if remote else "in_person"}
        if c.services and data.draw(st.booleans()):
            body["service_type_id"] = data.draw(st.sampled_from(c.services))
        r = self.call(c, "receptionist", "POST", "/appointments", json=body)
        taken = self._overlaps(c, prof, start, end)
        if taken or (taken is None and r.status_code == 409):
            self.expect(r, (409,), "double_booking_refused")
            if taken is None:
                STATS.known["slot_held_by_a_blocked_booking"] += 1
            return
        if self.expect(r, (201,), "book_free_slot"):
            got = r.json()
            self.check(got["no_show_risk_score"] is None, "own_score",
                       "a new booking carries a score")
            c.appointments[got["id"]] = AppointmentM(
                got["id"], patient, prof, start, end, got["status"], got["version"], remote)

    def _pick_appointment(self, c: ClinicM, data: st.DataObject,
                          statuses: frozenset[str] | None = None) -> AppointmentM | None:
        pool = [a for a in c.appointments.values()
                if not a.hidden and (statuses is None or a.status in statuses)]
        return data.draw(st.sampled_from(pool)) if pool else None

    def _acknowledge(self, c: ClinicM, a: AppointmentM, got: dict[str, Any]) -> None:
        self.check(got["id"] == a.id, "acknowledged_write", "answered another appointment")
        self.check(got["version"] == a.version + 1, "acknowledged_version",
                   f"appointment version {got['version']} after {a.version}")
        self.check(got["no_show_risk_score"] == a.score, "own_score",
                   f"appointment {a.id} answered score {got['no_show_risk_score']}, "
                   f"its own is {a.score}")
        a.version, a.status = got["version"], got["status"]

    @precondition(lambda self: self.any_appointment())
    @rule(k=st.integers(0, 1), data=st.data(), day=st.integers(0, DAYS - 1),
          slot=st.integers(0, SLOTS - 2))
    def reschedule(self, k: int, data: st.DataObject, day: int, slot: int) -> None:
        c = self.clinics[k]
        a = self._pick_appointment(c, data)
        if a is None:
            return
        halves = int((a.end - a.start).total_seconds() // 1800)
        start, end = slot_window(day, slot, halves)
        r = self.call(c, "receptionist", "POST", f"/appointments/{a.id}/reschedule", json={
            "version": a.version, "start_time": start.isoformat(), "end_time": end.isoformat()})
        if a.status not in {"scheduled", "confirmed"}:
            self.expect(r, (409,), "reschedule_only_open")
            return
        taken = self._overlaps(c, a.professional, start, end, exclude=a.id)
        if taken or (taken is None and r.status_code == 409):
            self.expect(r, (409,), "double_booking_refused")
            return
        if self.expect(r, (201,), "reschedule_free_slot"):
            got = r.json()
            self.check(got["rescheduled_from_id"] == a.id, "acknowledged_write",
                       "the new booking does not link the old one")
            self.check(got["no_show_risk_score"] is None, "own_score",
                       "a rescheduled booking carries a score before it was scored")
            a.status, a.version = "rescheduled", a.version + 1
            c.appointments[got["id"]] = AppointmentM(
                got["id"], a.patient, a.professional, start, end, got["status"],
                got["version"], a.remote)
            c.sessions.pop(a.id, None)

    @precondition(lambda self: self.any_appointment())
    @rule(k=st.integers(0, 1), data=st.data(),
          step=st.sampled_from(["confirm", "cancel", "check-in", "start", "complete",
                                "no-show"]),
          stale=st.booleans())
    def change_status(self, k: int, data: st.DataObject, step: str, stale: bool) -> None:
        c = self.clinics[k]
        a = self._pick_appointment(c, data)
        if a is None:
            return
        version = a.version - 1 if stale and a.version > 1 else a.version
        role = "professional" if step in {"start", "complete"} else "receptionist"
        body: dict[str, Any] = {"version": version}
        if step == "cancel":
            body["reason"] = "patient"
        r = self.call(c, role, "POST", f"/appointments/{a.id}/{step}", json=body)
        if version != a.version:
            self.expect(r, (409,), "stale_write_refused")
            return
        target = {"confirm": "confirmed", "cancel": "cancelled", "check-in": a.status,
                  "start": "in_progress", "complete": "completed", "no-show": "no_show"}[step]
        allowed = {
            "confirm": {"scheduled"}, "cancel": {"scheduled", "confirmed"},
            "check-in": {"scheduled", "confirmed"}, "start": {"scheduled", "confirmed"},
            "complete": {"in_progress"}, "no-show": {"scheduled", "confirmed"},
        }[step]
        if a.status not in allowed:
            self.expect(r, (409,), "status_graph")
            return
        if self.expect(r, (200,), f"status_{step}"):
            got = r.json()
            self._acknowledge(c, a, got)
            self.check(got["status"] == target, "status_graph",
                       f"{step} left the appointment {got['status']}")

    @rule(k=st.integers(0, 1))
    def score_no_show_risk(self, k: int) -> None:
        """What the nightly ``neonpro noshow score`` does, then booking must still work."""
        c = self.clinics[k]
        noshow.score_upcoming(self.world.box.uow(c.id, SYSTEM), days=DAYS + 3)
        with self.world.owner.connect() as conn:
            rows = conn.execute(text(
                "SELECT appointment_id::text, score FROM appointment_risk_scores "
                "WHERE clinic_id = :c"), {"c": c.id}).all()
        scores = dict(rows)  # type: ignore[arg-type]
        for a in c.appointments.values():
            a.score = scores.get(a.id)

    # ------------------------------------------------------------------ consents
    @rule(k=st.integers(0, 1), data=st.data(), purpose=st.sampled_from(PURPOSES))
    def grant_consent(self, k: int, data: st.DataObject, purpose: str) -> None:
        c = self.clinics[k]
        live = c.live_patients()
        if not live:
            return
        remote = sorted({a.patient for a in c.appointments.values()
                         if a.remote and a.patient in live})
        if remote and data.draw(st.booleans()):
            patient, purpose = data.draw(st.sampled_from(remote)), "telemedicine"
        else:
            patient = data.draw(st.sampled_from(live))
        decisions = c.ledger.setdefault((patient, purpose), [])
        version = f"{purpose}-v{len(decisions) + 1}"
        r = self.call(c, "receptionist", "POST", "/consents", json={
            "patient_id": patient, "purpose": purpose, "terms_version": version,
            "terms_hash": hashlib.sha256(version.encode()).hexdigest(),
            "collection_method": "online_form"})
        if self.expect(r, (201,), "grant_consent"):
            decisions.append(Decision("granted", r.json()["id"], version))
            c.grant_seq[r.json()["id"]] = len(c.grant_seq)
            c.dirty.add(patient)

    @precondition(lambda self: self.any_consent())
    @rule(k=st.integers(0, 1), data=st.data())
    def revoke_consent(self, k: int, data: st.DataObject) -> None:
        """Revoke the newest grant of a purpose (again if it was revoked: refused)."""
        c = self.clinics[k]
        keys = [key for key, d in c.ledger.items()
                if d and c.patients[key[0]].erased is None]
        if not keys:
            return
        key = data.draw(st.sampled_from(keys))
        decisions = c.ledger[key]
        newest = next(d for d in reversed(decisions) if d.kind == "granted")
        r = self.call(c, "receptionist", "POST", f"/consents/{newest.consent_id}/revoke")
        if decisions[-1].kind == "revoked":
            self.expect(r, (409,), "revoke_twice_refused")
            return
        if self.expect(r, (200,), "revoke_consent"):
            decisions.append(Decision("revoked", r.json()["id"], newest.terms_version))
            c.dirty.add(key[0])

    def _consents_agree(self, c: ClinicM, patient: str) -> None:
        """The ledger's latest decision per purpose, as every reader tells it."""
        p = c.patients[patient]
        active = c.active_purposes(patient)
        withdrawn = c.withdrawn_purposes(patient)
        decisions = sum(len(d) for (pid, _), d in c.ledger.items() if pid == patient)

        history = self.call(c, "dpo", "GET", f"/patients/{patient}/consents")
        if self.expect(history, (200,), "consent_history"):
            self.check(len(history.json()) == decisions, "consent_history",
                       f"{len(history.json())} ledger rows, {decisions} decisions made")

        read = self.call(c, "admin", "GET", f"/patients/{patient}")
        if self.expect(read, (200,), "patient_readable"):
            body = read.json()
            want = "given" if active else ("withdrawn" if withdrawn else "pending")
            self.check(body["data_consent_status"] == want, "consent_summary_follows_ledger",
                       f"summary {body['data_consent_status']}, ledger says {want}")
            newest = _newest_grant(c, patient, active)
            self.check(body["data_consent_version"] == newest,
                       "consent_summary_follows_ledger",
                       f"summary version {body['data_consent_version']}, ledger {newest}")
            self.check(body["version"] == p.version, "acknowledged_version",
                       "the patient's version moved without a write")

        confirmation = self.call(c, "dpo", "GET", f"/lgpd/patients/{patient}/confirmation")
        if self.expect(confirmation, (200,), "confirmation"):
            body = confirmation.json()
            in_force = {b["purpose"] for b in body["legal_bases"]
                        if b["source"] == "consent_ledger"}
            gone = {w["purpose"] for w in body["withdrawn"]}
            self.check(in_force == active, "consent_confirmation_follows_ledger",
                       f"confirmation in force {sorted(in_force)}, ledger {sorted(active)}")
            self.check(gone == withdrawn, "consent_confirmation_follows_ledger",
                       f"confirmation withdrawn {sorted(gone)}, ledger {sorted(withdrawn)}")

        findings = self.call(c, "dpo", "GET", "/consents/compliance")
        if self.expect(findings, (200,), "compliance"):
            current = {c.ledger[(patient, purpose)][-1].consent_id for purpose in active}
            judged = {f["consent_id"] for f in findings.json()
                      if f.get("patient_id") == patient and f.get("consent_id")}
            self.check(judged <= current, "consent_compliance_follows_ledger",
                       f"compliance judges {len(judged - current)} grant(s) no longer current")

        exported = self.call(c, "dpo", "GET", f"/lgpd/patients/{patient}/export")
        if self.expect(exported, (200,), "export_json"):
            self.check(len(exported.json()["consent_records"]) == decisions, "export_json",
                       "the JSON export does not hold every ledger row")

        fhir = self.call(c, "dpo", "GET", f"/lgpd/patients/{patient}/export",
                         params={"format": "fhir"})
        if self.expect(fhir, (200,), "export_fhir"):
            resources = [e["resource"] for e in fhir.json().get("entry", [])]
            permits = [r for r in resources
                       if r["resourceType"] == "Consent" and r.get("status") == "active"]
            purposes = {code["code"] for r in permits
                        for code in r.get("provision", {}).get("purpose", [])
                        if code.get("system", "").startswith("https://neonpro.dev")}
            self.check(purposes == active and len(permits) == len(active),
                       "consent_fhir_follows_ledger",
                       f"FHIR active consents {sorted(purposes)} ({len(permits)}), "
                       f"ledger {sorted(active)}")

    # ------------------------------------------------------------------ telemedicine
    @precondition(lambda self: self.any_remote())
    @rule(k=st.integers(0, 1), data=st.data())
    def start_telemedicine(self, k: int, data: st.DataObject) -> None:
        c = self.clinics[k]
        pool = [a for a in c.appointments.values() if a.remote and a.status in ACTIVE
                and not a.hidden and c.patients[a.patient].erased is None]
        if not pool:
            return
        a = data.draw(st.sampled_from(pool))
        r = self.call(c, "professional", "POST", f"/appointments/{a.id}/telemedicine/start")
        allowed = "telemedicine" in c.active_purposes(a.patient)
        if self.expect(r, (201,) if allowed else (428,), "consent_gate_follows_ledger") and \
                allowed:
            c.sessions[a.id] = r.json()["session_id"]

    @precondition(lambda self: self.any_session())
    @rule(k=st.integers(0, 1), data=st.data(), unknown=st.booleans())
    def join_telemedicine(self, k: int, data: st.DataObject, unknown: bool) -> None:
        c = self.clinics[k]
        if not c.sessions:
            return
        appointment = data.draw(st.sampled_from(sorted(c.sessions)))
        a = c.appointments[appointment]
        if c.patients[a.patient].erased is not None:
            return
        session = str(uuid.uuid4()) if unknown else c.sessions[appointment]
        r = self.call(c, "receptionist", "POST", f"/appointments/{a.id}/telemedicine/join",
                      json={"session_id": session, "participant": "patient"})
        if unknown:
            self.expect(r, (404,), "telemedicine_join_unknown_session")
        elif "telemedicine" not in c.active_purposes(a.patient):
            self.expect(r, (428,), "telemedicine_join_after_revocation")
        else:
            self.expect(r, (204,), "telemedicine_join")

    # ------------------------------------------------------------------ LGPD
    @rule(k=st.integers(0, 1), data=st.data(),
          kind=st.sampled_from(["access", "portability", "correction", "confirmation"]))
    def open_request(self, k: int, data: st.DataObject, kind: str) -> None:
        c = self.clinics[k]
        live = c.live_patients()
        if not live:
            return
        patient = data.draw(st.sampled_from(live))
        r = self.call(c, "receptionist", "POST", "/lgpd/requests",
                      json={"patient_id": patient, "kind": kind})
        if self.expect(r, (201,), "open_request"):
            c.requests[r.json()["id"]] = RequestM(r.json()["id"], patient, kind)

    @precondition(lambda self: self.any_request())
    @rule(k=st.integers(0, 1), data=st.data(),
          step=st.sampled_from(["verify", "fulfil", "fulfil-with-export"]))
    def progress_request(self, k: int, data: st.DataObject, step: str) -> None:  # noqa: C901
        c = self.clinics[k]
        if not c.requests:
            return
        q = c.requests[data.draw(st.sampled_from(sorted(c.requests)))]
        if step == "verify":
            r = self.call(c, "dpo", "POST", f"/lgpd/requests/{q.id}/verify")
            if q.status in {"fulfilled", "refused"} or q.verified:  # once only
                self.expect(r, (409,), "verify_request_once")
            elif self.expect(r, (200,), "verify_request"):
                q.verified = True
            return
        body: dict[str, Any] | None = {"response_sha256": "0" * 64}
        if step == "fulfil-with-export":
            if c.patients[q.patient].erased == "blocked" or q.kind not in {
                    "access", "portability"}:
                return
            exported = self.call(c, "dpo", "GET", f"/lgpd/patients/{q.patient}/export",
                                 params={"request_id": q.id})
            if q.status in {"fulfilled", "refused"}:
                return
            self.expect(exported, (200,), "export_for_request")
            body = None
        r = self.call(c, "dpo", "POST", f"/lgpd/requests/{q.id}/fulfil",
                      **({"json": body} if body else {}))
        if q.status in {"fulfilled", "refused"}:
            self.expect(r, (409,), "request_final")
        elif not q.verified:
            self.expect(r, (409,), "fulfil_needs_verified_identity")
        elif self.expect(r, (200,), "fulfil_request"):
            q.status = r.json()["status"]
            self.check(q.status == "fulfilled", "fulfil_request", q.status)

    @rule(k=st.integers(0, 1), data=st.data(), fhir=st.booleans())
    def export(self, k: int, data: st.DataObject, fhir: bool) -> None:
        c = self.clinics[k]
        if not c.patients:
            return
        p = c.patients[data.draw(st.sampled_from(sorted(c.patients)))]
        r = self.call(c, "dpo", "GET", f"/lgpd/patients/{p.id}/export",
                      params={"format": "fhir" if fhir else "json"})
        if p.erased == "blocked":
            self.expect(r, (404,), "blocked_not_exported")
        else:
            self.expect(r, (200,), "export")

    @rule(k=st.integers(0, 1), data=st.data())
    def erase(self, k: int, data: st.DataObject) -> None:
        c = self.clinics[k]
        live = c.live_patients()
        if len(live) < 2:
            return
        p = c.patients[data.draw(st.sampled_from(live))]
        r = self.call(c, "dpo", "POST", f"/lgpd/patients/{p.id}/erasure")
        if self.expect(r, (200,), "erase"):
            p.erased = r.json()["outcome"]
            self.check(p.erased in {"anonymized", "blocked"}, "erase", p.erased)
            self._forget_appointments(c, p)
            self._after_erasure(c, p)

    def _forget_appointments(self, c: ClinicM, p: PatientM) -> None:
        """Anonymized: the patient's bookings are deleted (nothing took place); blocked:
        they are blocked with the record and no longer shown (they keep their time)."""
        for a in [a for a in c.appointments.values() if a.patient == p.id]:
            c.sessions.pop(a.id, None)
            if p.erased == "blocked":
                a.hidden = True
            else:
                del c.appointments[a.id]

    def _after_erasure(self, c: ClinicM, p: PatientM) -> None:
        for active in ("true", "false"):  # nobody is found by the erased name
            found = self.call(c, "admin", "GET", "/patients",
                              params={"name": p.name, "active": active})
            if self.expect(found, (200,), "search_patients"):
                self.check(found.json()["items"] == [], "erased_data_never_shown",
                           f"patient {p.id} ({p.erased}) still found by name")
        read = self.call(c, "admin", "GET", f"/patients/{p.id}")
        if p.erased == "blocked":
            self.expect(read, (404,), "blocked_not_readable")
        elif self.expect(read, (200,), "anonymized_readable"):
            p.version = read.json()["version"]
        c.dirty.discard(p.id)

    @rule(k=st.integers(0, 1), years=st.sampled_from([0, 2]))
    def run_retention(self, k: int, years: int) -> None:
        """What ``neonpro lgpd retention`` does, today or as if two years had passed."""
        c = self.clinics[k]
        now = datetime.now(UTC) + timedelta(days=366 * years)
        box = self.world.box
        plan = retention.plan_retention(box, RETENTION_JOB, c.id, now=now)
        retention.apply_retention(box, RETENTION_JOB, plan)
        erased = {str(i.target) for i in plan if i.trigger != "consent_revoked"}
        for pid in erased & set(c.patients):
            p = c.patients[pid]
            if p.erased is not None:
                continue
            read = self.call(c, "admin", "GET", f"/patients/{pid}")
            p.erased = "blocked" if read.status_code == 404 else "anonymized"
            self._forget_appointments(c, p)
            if read.status_code == 200:
                p.version = read.json()["version"]
            c.dirty.discard(pid)

    # ------------------------------------------------------------------ reading
    @rule(k=st.integers(0, 1), data=st.data(), role=st.sampled_from(ROLES),
          what=st.sampled_from(["patient", "appointment", "calendar", "audit", "export",
                                "requests", "consents"]))
    def read_as(self, k: int, data: st.DataObject, role: str, what: str) -> None:  # noqa: C901
        c = self.clinics[k]
        oversight = role in {"admin", "dpo"}
        if what == "calendar":
            self.expect(self.call(c, role, "GET", "/calendar", params=_calendar_window()),
                        (200,), "read_calendar")
        elif what == "audit":
            self.expect(self.call(c, role, "GET", "/audit/events", params={"limit": 20}),
                        (200,) if oversight else (403,), "read_audit_by_role")
        elif what == "requests":
            self.expect(self.call(c, role, "GET", "/lgpd/requests"),
                        (200,) if oversight else (403,), "read_requests_by_role")
        elif what == "appointment" and c.appointments:
            a = c.appointments[data.draw(st.sampled_from(sorted(c.appointments)))]
            r = self.call(c, role, "GET", f"/appointments/{a.id}")
            if a.hidden:
                self.expect(r, (404,), "erased_data_never_shown")
            elif self.expect(r, (200,), "read_appointment"):
                got = r.json()
                self.check((got["version"], got["status"]) == (a.version, a.status),
                           "acknowledged_version", f"appointment {a.id} drifted")
                self.check(got["no_show_risk_score"] == a.score, "own_score",
                           f"appointment {a.id} reads score {got['no_show_risk_score']}")
        elif what in {"patient", "export", "consents"} and c.patients:
            p = c.patients[data.draw(st.sampled_from(sorted(c.patients)))]
            gone = p.erased == "blocked"
            if what == "patient":
                r = self.call(c, role, "GET", f"/patients/{p.id}")
                if self.expect(r, (404,) if gone else (200,), "read_patient") and not gone:
                    self.check(r.json()["version"] == p.version, "acknowledged_version",
                               f"patient {p.id} drifted")
                    if role not in {"admin", "professional"}:
                        self.check(r.json()["patient_notes"] is None, "clinical_hidden",
                                   f"{role} sees clinical notes")
            elif what == "export":
                want = (404,) if gone and oversight else (200,) if oversight else (403,)
                self.expect(self.call(c, role, "GET", f"/lgpd/patients/{p.id}/export"),
                            want, "export_by_role")
            else:
                self.call(c, role, "GET", f"/patients/{p.id}/consents")

    # ------------------------------------------------------------------ staff sessions
    @rule(k=st.integers(0, 1), ending=st.sampled_from(["logout", "password", "removed"]))
    def staff_member_signs_in_and_out(self, k: int, ending: str) -> None:
        """A real member signs in, works, reaches nothing of the other clinic, and their
        session ends (signing out, a password change, removal): the token is refused from
        the next request on, while the clinic's other work goes on."""
        c = self.clinics[k]
        email = f"{c.tag.lower()}.s{next(c.counter)}@sim.example"
        password = "senha " + secrets.token_hex(8)
        user, _ = clinics.add_staff_member(self.world.box.service_uow(SYSTEM), c.id,
                                           StaffUserCreate(
                                               email=email, display_name=f"{c.tag} Equipe",
                                               password_hash=hash_password(password)),
                                           ClinicRole.RECEPTIONIST)
        signed = self.client.post("/auth/login", json={"email": email, "password": password})
        if not self.expect(signed, (200,), "staff_sign_in"):
            return
        me = {"Authorization": f"Bearer {signed.json()['access_token']}"}
        self.expect(self.client.get("/clinic", headers=me), (200,), "staff_sign_in")
        o = self.other(c)
        if o.patients:
            pid = sorted(o.patients)[0]
            self.expect(self.client.get(f"/patients/{pid}", headers=me), (404,),
                        "other_clinic_invisible")
        if ending == "logout":
            self.expect(self.client.post("/auth/logout", headers=me), (204,), "sign_out")
        elif ending == "password":
            changed = self.client.post("/auth/password", headers=me, json={
                "current_password": password, "new_password": password + " nova"})
            if self.expect(changed, (200,), "password_change"):
                fresh = {"Authorization": f"Bearer {changed.json()['access_token']}"}
                self.expect(self.client.get("/clinic", headers=fresh), (200,),
                            "password_change")
        else:
            self.expect(self.call(c, "admin", "DELETE", f"/staff/{user.id}"), (204,),
                        "member_removed")
        for method, path in (("GET", "/clinic"), ("GET", "/patients"),
                             ("POST", "/patients")):
            ended = self.client.request(method, path, headers=me,
                                        json={"full_name": "X"} if method == "POST" else None)
            self.expect(ended, (401,), "ended_session_refused")

    @rule(k=st.integers(0, 1), known=st.booleans(), guesses=st.integers(1, 8))
    def stranger_guesses_passwords(self, k: int, known: bool, guesses: int) -> None:
        """From an address of their own: every answer is 401 or 429, the same body for a
        real account and an unknown e-mail."""
        c = self.clinics[k]
        target = (f"{c.tag.lower()}.s0@sim.example" if known
                  else f"ninguem.{secrets.token_hex(4)}@sim.example")
        address = f"192.0.2.{secrets.randbelow(250) + 1}"
        stranger = TestClient(self.client.app, raise_server_exceptions=False,
                              client=(address, 40000))
        for i in range(guesses):
            r = stranger.post("/auth/login", json={"email": target, "password": f"g{i}"})
            STATS.requests += 1
            self.expect(r, (401, 429), "stranger_refused")
            self.check(target not in r.text, "no_echo", "a sign-in answer names the e-mail")

    @rule(k=st.integers(0, 1), data=st.data())
    def probe_other_clinic(self, k: int, data: st.DataObject) -> None:
        """A token of one clinic asks for the other clinic's things by id."""
        c, o = self.clinics[k], self.other(self.clinics[k])
        if o.patients:
            pid = data.draw(st.sampled_from(sorted(o.patients)))
            self.expect(self.call(c, "admin", "GET", f"/patients/{pid}"), (404,),
                        "other_clinic_invisible")
            self.expect(self.call(c, "admin", "PATCH", f"/patients/{pid}",
                                  json={"version": 1, "city": "X"}), (404,),
                        "other_clinic_invisible")
            self.expect(self.call(c, "dpo", "GET", f"/lgpd/patients/{pid}/export"),
                        (404,), "other_clinic_invisible")
        if o.appointments:
            aid = data.draw(st.sampled_from(sorted(o.appointments)))
            self.expect(self.call(c, "receptionist", "GET", f"/appointments/{aid}"), (404,),
                        "other_clinic_invisible")

    # ------------------------------------------------------------------ invariants
    @invariant()
    def count_step(self) -> None:
        if self.clinics:
            self.steps += 1
            STATS.steps += 1
        self.touched = set()  # (runs last: invariants run in name order)

    def _checked(self) -> list[ClinicM]:
        """The clinics a write touched since the last check (what else could change?)."""
        return [c for i, c in enumerate(self.clinics) if i in self.touched]

    @invariant()
    def acknowledged_writes_are_there(self) -> None:
        for c in self._checked():
            listed = self.call(c, "admin", "GET", "/patients", params={"limit": 200})
            if not self.expect(listed, (200,), "list_patients"):
                continue
            seen = {p["id"]: p for p in listed.json()["items"]}
            for p in c.patients.values():
                if p.erased == "blocked":
                    self.check(p.id not in seen, "erased_data_never_shown",
                               f"blocked patient {p.id} listed")
                if p.erased is not None:  # anonymized: inactive, out of the default list
                    continue
                got = seen.get(p.id)
                self.check(got is not None and got["version"] == p.version,
                           "acknowledged_version",
                           f"patient {p.id}: listed {got and got['version']}, acknowledged "
                           f"{p.version}")
                if got is not None and p.erased is None and p.city is not None:
                    self.check(got["city"] == p.city, "acknowledged_write",
                               f"patient {p.id} lost its correction")

    @invariant()
    def calendar_matches_and_never_double_books(self) -> None:
        for c in self._checked():
            r = self.call(c, "receptionist", "GET", "/calendar", params=_calendar_window())
            if not self.expect(r, (200,), "read_calendar"):
                continue
            entries = {e["id"]: e for e in r.json()}
            for a in c.appointments.values():
                e = entries.get(a.id)
                if a.hidden:
                    self.check(e is None, "erased_data_never_shown",
                               f"the blocked patient's booking {a.id} is in the calendar")
                    continue
                self.check(e is not None and (e["version"], e["status"]) == (
                    a.version, a.status), "acknowledged_version",
                    f"appointment {a.id}: calendar {e and (e['version'], e['status'])}, "
                    f"acknowledged {(a.version, a.status)}")
                if e is not None:
                    self.check(e["no_show_risk_score"] == a.score, "own_score",
                               f"calendar score of {a.id} is not its own")
            self.check(set(entries) <= set(c.appointments), "acknowledged_write",
                       "the calendar holds an appointment nobody booked")
            active = sorted((e for e in entries.values() if e["status"] in ACTIVE),
                            key=lambda e: (e["professional_id"], e["start_time"]))
            for before, after in itertools.pairwise(active):
                self.check(before["professional_id"] != after["professional_id"]
                           or datetime.fromisoformat(before["end_time"])
                           <= datetime.fromisoformat(after["start_time"]),
                           "calendar_no_overlap",
                           f"{before['id']} and {after['id']} overlap")

    @invariant()
    def consent_readers_agree_with_the_ledger(self) -> None:
        for c in self.clinics:
            for patient in sorted(c.dirty):
                if c.patients[patient].erased is None:
                    self._consents_agree(c, patient)
            c.dirty.clear()

    @invariant()
    def audit_chain_verifies(self) -> None:
        if not self.clinics or self.steps % self.audit_every:
            return
        self._verify_audit()

    def _verify_audit(self) -> None:
        for c in self.clinics:
            r = self.call(c, "dpo", "GET", "/audit/verify")
            if self.expect(r, (200,), "audit_chain_verifies"):
                self.check(r.json()["ok"] is True, "audit_chain_verifies",
                           f"clinic chain broken: {r.json()}")

    def teardown(self) -> None:
        if self.clinics:
            self.touched = {0, 1}
            self.acknowledged_writes_are_there()
            self.calendar_matches_and_never_double_books()
            self._verify_audit()
            for c in self.clinics:  # everyone's consents, once more at the end
                for patient in c.live_patients():
                    if any(pid == patient for pid, _ in c.ledger):
                        self._consents_agree(c, patient)


def _newest_grant(c: ClinicM, patient: str, active: set[str]) -> str | None:
    """The terms version of the newest grant still in force (the summary's version)."""
    grants = [c.ledger[(patient, purpose)][-1] for purpose in active]
    if not grants:
        return None
    return max(grants, key=lambda d: c.grant_seq[d.consent_id]).terms_version


def _calendar_window() -> dict[str, str]:
    start = datetime.combine(day0(), time(0), tzinfo=SP)
    return {"start": start.isoformat(),
            "end": (start + timedelta(days=DAYS + 1)).isoformat()}
