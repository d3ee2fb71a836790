"""Retention benchmark: ``neonpro lgpd retention --apply`` over one clinic of N patients.

    .venv/bin/python bench/retention.py                      # 100,000 patients
    .venv/bin/python bench/retention.py --patients 2000      # a quick run

Creates a scratch database ``neonpro_bench_*`` on the server of ``--url`` (only used to
CREATE/DROP databases), migrates it and loads one clinic with COPY as ``neonpro_service``
(the audit triggers fire for every row, as for the application's writes). Patients come
from ``_setup._rows`` (real AES-GCM ciphertexts and real blind indexes), re-dated into a
mix:

* ~15 % registered within the last two years: not due;
* ~2 % blocked records whose last clinical entry is 24-30 years old: the 20-year hold ran
  out, so retention anonymizes and unblocks them;
* the rest inactive for 5.5-12 years, due under the 5-year inactivity policy: a third with
  a clinical record (notes, blood type, completed appointments with encrypted notes), which
  the law turns into a block; the others without one (some cancelled bookings), anonymized;
* a marketing consent for ~30 % of the patients, 40 % of them revoked (a ledger row
  superseding the grant, with evidence), due under the 1-year consent-revoked policy.

The loaded database is then cloned (``CREATE DATABASE ... TEMPLATE``), so both paths work on
the same data:

* **ours**: ``plan_retention`` + ``apply_retention`` (what ``lgpd retention --apply``
  runs) on a ``Container``, then the audit seal the CLI does before it exits (timed
  apart, and counted in the goal; the seeding's own events are sealed before);
* **raw**: one psycopg connection running the same SQL: the plan queries, and per batch the
  context ``set_config``, the facts query, one audit ``INSERT ... unnest``, the set-based
  patients/appointments/consents statements, the ledger rows, the batch's ``RETENTION``
  event, ``COMMIT``; then the same seal function. Statement texts are compiled from ours
  once, so the difference is what our layers (SQLAlchemy execution, unit of work, the
  service's Python) cost. Raw does not seal: sealing is one database function, the same
  for both (``neonpro_audit_seal``), timed on ours only.

The two paths alternate batch by batch (ours calls ``apply_retention`` on each batch of
the plan, as its own loop does), so that load from other work, checkpoints and autovacuum
fall on both alike. Both resulting databases are compared (patients anonymized/blocked, ledger rows, audit
events per action, consent evidence), and a second plan on ours must be empty. Prints
patients/s and seconds against the goal (100,000 patients in under 10 minutes) and the
ours/raw ratio. Both scratch databases are dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _setup import (
    COPY_COLUMNS,
    DEFAULT_ADMIN_URL,
    ROLES,
    Dataset,
    _rows,
    create_scratch_database,
    drop_scratch_database,
    make_keyring,
    make_settings,
)
from psycopg.types.json import Jsonb
from sqlalchemy import any_, bindparam, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from neonpro.adapters.crypto import BlindIndexer, FieldCipher
from neonpro.adapters.db import migrate
from neonpro.adapters.db.audit import seal_pending
from neonpro.adapters.db.database import SET_CONTEXT, context_params
from neonpro.adapters.db.repositories import erasure as erasure_repo
from neonpro.adapters.db.repositories import retention as retention_repo
from neonpro.adapters.db.repositories.audit import INSERT as AUDIT_INSERT
from neonpro.adapters.db.repositories.audit import INSERT_MANY as AUDIT_INSERT_MANY
from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.erasure import Action, Decision, PatientFacts, decide, outcome
from neonpro.services import retention
from neonpro.services.erasure import AUDIT_ACTION

ACTOR = SystemActors.CLI
GOAL_PATIENTS, GOAL_SECONDS = 100_000, 600.0
DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
COL = {name: i for i, name in enumerate(COPY_COLUMNS)}
NOTE = "Retorno em 30 dias para avaliação do procedimento de preenchimento."
POLICIES = (  # category, trigger, period, action, legal reference
    ("identification", "inactivity", "1826 days", "anonymize", "LGPD Art. 15 I and 16"),
    ("clinical", "last_clinical_entry", "20 years", "anonymize", "Lei 13.787/2018 Art. 6"),
    ("marketing", "consent_revoked", "365 days", "delete", "LGPD Art. 15 III and 16"),
)
APPT_COLUMNS = ("clinic_id", "id", "patient_id", "professional_id", "start_time", "end_time",
                "status", "clinical_notes_encrypted", "internal_notes_encrypted", "notes",
                "created_by", "updated_by", "created_at", "updated_at", "blocked_at")
CONSENT_COLUMNS = ("clinic_id", "id", "patient_id", "purpose", "legal_basis", "status",
                   "given_at", "revoked_at", "collection_method", "terms_version", "terms_hash",
                   "evidence", "data_categories", "supersedes_id", "created_at")


# ------------------------------------------------------------------------------ seeding
class Seeder:
    """Builds the rows of one clinic; appointments and consents follow each patient."""

    def __init__(self, clinic: uuid.UUID, cipher: FieldCipher, rng: random.Random,
                 now: datetime, professionals: list[uuid.UUID]) -> None:
        self.clinic, self.cipher, self.rng, self.now = clinic, cipher, rng, now
        self.professionals = professionals
        self.appointments: list[tuple[object, ...]] = []
        self.consents: list[tuple[object, ...]] = []
        self.kinds: dict[str, int] = {}
        self._taken: set[tuple[int, datetime]] = set()

    def _slot(self, at: datetime) -> tuple[uuid.UUID, datetime]:
        """A professional and a free hour (30-minute bookings never overlap)."""
        hour = at.replace(minute=0, second=0, microsecond=0)
        while True:
            n = self.rng.randrange(len(self.professionals))
            if (n, hour) not in self._taken:
                self._taken.add((n, hour))
                return self.professionals[n], hour
            hour += timedelta(hours=1)

    def _appointment(self, patient: uuid.UUID, at: datetime, *, clinical: bool,
                     blocked: datetime | None = None) -> None:
        aid = uuid.uuid4()
        at = min(at, self.now - timedelta(days=1))
        prof, start = self._slot(at)

        def secret(column: str, value: str) -> bytes:
            return self.cipher.encrypt(value, table="appointments", column=column, row_id=aid)

        self.appointments.append((
            self.clinic, aid, patient, prof, start, start + timedelta(minutes=30),
            "completed" if clinical else self.rng.choice(("cancelled", "scheduled")),
            secret("clinical_notes_encrypted", NOTE) if clinical else None,
            secret("internal_notes_encrypted", "ok") if clinical else None,
            "trazer exames", ACTOR.id, ACTOR.id, at - timedelta(days=7), at, blocked,
        ))

    def _consent(self, patient: uuid.UUID, given: datetime, *, revoke: bool) -> None:
        grant = uuid.uuid4()
        evidence = Jsonb({"ip": f"198.51.100.{self.rng.randrange(1, 255)}",
                          "user_agent": "Navegador/1.0"})
        common = ("marketing", "consent", "online_form", "m1", "e" * 64)
        self.consents.append((self.clinic, grant, patient, common[0], common[1], "granted",
                              given, None, *common[2:], evidence, ["contact"], None, given))
        if revoke and given + timedelta(days=201) < self.now:
            at = given + timedelta(days=200)
            self.consents.append((self.clinic, uuid.uuid4(), patient, common[0], common[1],
                                  "revoked", given, at, *common[2:], evidence, ["contact"],
                                  grant, at))

    def patient(self, row: tuple[object, ...]) -> tuple[object, ...]:
        out = list(row)
        pid = row[COL["id"]]
        assert isinstance(pid, uuid.UUID)
        rng, now = self.rng, self.now
        r = rng.random()
        blocked_at = None
        if r < 0.15:
            kind = "recent"
            created = now - timedelta(days=rng.uniform(30, 700))
            clinical = rng.random() < 0.5
        elif r < 0.17:
            kind = "hold_expired"
            created = now - timedelta(days=rng.uniform(24, 30) * 365)
            clinical = True
            blocked_at = created + timedelta(days=3 * 365)
        else:
            created = now - timedelta(days=rng.uniform(5.5, 12) * 365)
            clinical = rng.random() < 0.33
            kind = "due_clinical" if clinical else "due_plain"
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        out[COL["created_at"]] = out[COL["updated_at"]] = created
        out[COL["deleted_at"]] = None
        if clinical:
            for _ in range(rng.randrange(1, 4)):
                self._appointment(pid, created + timedelta(days=rng.uniform(1, 300)),
                                  clinical=True, blocked=blocked_at)
        else:
            out[COL["patient_notes_encrypted"]] = None
            out[COL["blood_type"]] = None
            out[COL["allergies"]] = []
            if rng.random() < 0.4:
                self._appointment(pid, created + timedelta(days=rng.uniform(1, 200)),
                                  clinical=False)
        if rng.random() < 0.3:
            self._consent(pid, created + timedelta(days=1), revoke=rng.random() < 0.4)
        return (*out, blocked_at)


def seed(url: str, patients: int, seed_value: int) -> tuple[uuid.UUID, dict[str, int]]:
    """Load one clinic of ``patients`` (COPY as the service role, audit triggers on)."""
    keyring = make_keyring()
    cipher, blind = FieldCipher(keyring), BlindIndexer(keyring)
    rng = random.Random(seed_value)
    clinic = uuid.UUID(int=rng.getrandbits(128), version=4)
    dataset = Dataset(url, keyring, [clinic], [patients], clinic)
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        conn.execute(f"SET ROLE {ROLES.service}")
        conn.execute("SELECT neonpro_bind_context('', %s, 'system', '', '', '', '')",
                     (str(ACTOR.id),))
        conn.execute("INSERT INTO clinics (id, name, timezone) VALUES (%s, %s, %s)",
                     (clinic, "Clínica Retenção", "America/Sao_Paulo"))
        professionals = [uuid.uuid4() for _ in range(max(10, patients // 500))]
        conn.cursor().executemany(
            "INSERT INTO professionals (clinic_id, id, full_name) VALUES (%s, %s, %s)",
            [(clinic, p, f"Dra. Bench {i}") for i, p in enumerate(professionals)])
        conn.cursor().executemany(
            "INSERT INTO retention_policies (clinic_id, data_category, trigger, period, action, "
            "legal_reference) VALUES (%s, %s, %s, CAST(%s AS interval), %s, %s)",
            [(clinic, *policy) for policy in POLICIES])
        seeder = Seeder(clinic, cipher, rng, now, professionals)
        columns = ", ".join((*COPY_COLUMNS, "blocked_at"))
        with conn.cursor().copy(f"COPY patients ({columns}) FROM STDIN") as copy:
            for row in _rows(dataset, cipher, blind, patients, rng):
                copy.write_row(seeder.patient(row))
        with conn.cursor().copy(f"COPY appointments ({', '.join(APPT_COLUMNS)}) "
                                "FROM STDIN") as copy:
            for appointment in seeder.appointments:
                copy.write_row(appointment)
        with conn.cursor().copy(f"COPY consent_records ({', '.join(CONSENT_COLUMNS)}) "
                                "FROM STDIN") as copy:
            for consent in seeder.consents:
                copy.write_row(consent)
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    counts = {**seeder.kinds, "appointments": len(seeder.appointments),
              "consent_rows": len(seeder.consents)}
    return clinic, counts


def seal_all(url: str, keyring: Any) -> int:
    """Seal every pending entry (the seeding's): in production the API's background sealer
    has sealed them long before a retention run, so the run's seal counts only its own."""
    box = Container(make_settings(url), database_url=url, keyring=keyring)
    try:
        return seal_pending(box.database, keyring, ACTOR)
    finally:
        box.close(seal=False)


# --------------------------------------------------------------------------- raw path
def compiled(statement: Any, **placeholders: Any) -> tuple[str, dict[str, Any]]:
    """The SQL text ours sends (psycopg placeholders) and its constant parameters
    (``placeholders``: values for the per-call parameters, so that the compiler can expand
    ``IN`` lists; they are passed again at each call)."""
    statement = getattr(statement, "statement", statement)  # a hot statement's construct
    c = statement.compile(dialect=DIALECT)
    state = c.construct_expanded_state({**c.construct_params(_check=False), **placeholders})
    return str(state.statement), dict(state.parameters)


class Raw:
    """The same database work as ours on one psycopg connection, statement texts compiled
    from ours once."""

    def __init__(self, conn: psycopg.Connection[Any], clinic: uuid.UUID) -> None:
        self.conn, self.clinic = conn, clinic
        self.context = compiled(SET_CONTEXT)[0]
        self.facts = compiled(erasure_repo.FACTS, clinic=clinic, ids=[])
        self.audit_many = compiled(AUDIT_INSERT_MANY)[0]
        self.audit_one = compiled(AUDIT_INSERT)[0]
        self.ledger = compiled(erasure_repo.INSERT_LEDGER)[0]
        self._patients: dict[tuple[bool, bool], tuple[str, dict[str, Any]]] = {}

    def patients_update(self, decisions: list[Decision],
                        unblock: bool) -> tuple[str, dict[str, Any]]:
        blocked = any(d.action is Action.BLOCK for d in decisions)
        key = (blocked, unblock)
        if key not in self._patients:
            changes = erasure_repo.patient_changes(decisions)
            changes.update(right_to_forget_requested_at=bindparam("now"),
                           updated_by=bindparam("actor"))
            if blocked:
                changes["blocked_at"] = bindparam("now")
            else:
                changes.update(anonymized_at=bindparam("now"), is_active=False)
                if unblock:
                    changes["blocked_at"] = None
            p = erasure_repo.P
            self._patients[key] = compiled(update(erasure_repo.PATIENTS).where(
                p.clinic_id == bindparam("clinic"), p.id == any_(erasure_repo.IDS),
            ).values(**changes))
        return self._patients[key]

    def batch(self, items: list[retention.RetentionItem], n: int) -> None:
        cur = self.conn.cursor()
        cur.execute(self.context, context_params(self.clinic, ACTOR.id, ACTOR.role))
        revoked = [i.target for i in items if i.trigger == "consent_revoked"]
        now = datetime.now(UTC)
        if revoked:
            cur.execute("SELECT neonpro_remove_consent_evidence(NULL, %(ids)s, 'retention')",
                        {"ids": revoked})
        for expired in (False, True):
            trigger = "last_clinical_entry" if expired else "inactivity"
            ids = list(dict.fromkeys(i.target for i in items if i.trigger == trigger))
            if not ids:
                continue
            sql, params = self.facts
            rows = cur.execute(sql, {**params, "clinic": self.clinic, "ids": ids}).fetchall()
            facts = {r[0]: PatientFacts(bool(r[1]) and not expired, bool(r[2])) for r in rows}
            kinds: dict[tuple[str, str], int] = {}
            events: list[tuple[int, str, str]] = []
            groups: dict[PatientFacts, list[uuid.UUID]] = {}
            for pid in ids:
                for d in decide(facts[pid]):
                    action = AUDIT_ACTION.get(d.action)
                    if action is not None:
                        details = json.dumps({"category": d.category.value,
                                              "action": d.action.value,
                                              "legal_reference": d.legal_reference})
                        kind = kinds.setdefault((action.value, details), len(kinds))
                        events.append((kind, str(pid), str(pid)))
                groups.setdefault(facts[pid], []).append(pid)
            cur.execute(self.audit_many, {
                "clinic": self.clinic, "actor": ACTOR.id, "role": ACTOR.role,
                "rtype": "patient", "status": "success", "risk": "medium", "ip": None,
                "ua": None, "session": None, "request": None,
                "kinds": "[" + ", ".join(f"[{json.dumps(a)}, {d}]" for a, d in kinds) + "]",
                "events": json.dumps(events)})
            entries: list[tuple[str, str, int]] = []
            outcomes: list[list[Any]] = []
            for fact, members in groups.items():
                decisions = decide(fact)
                mine = {"clinic": self.clinic, "ids": members}
                held = any(d.action is Action.BLOCK for d in decisions)
                if held:
                    cur.execute("SELECT neonpro_remove_consent_evidence(%(ids)s, NULL, "
                                "'erasure')", mine)
                    cur.execute("UPDATE appointments SET blocked_at = %(now)s WHERE clinic_id = "
                                "%(clinic)s AND patient_id = ANY(%(ids)s)", {**mine, "now": now})
                else:
                    cur.execute("DELETE FROM appointments WHERE clinic_id = %(clinic)s "
                                "AND patient_id = ANY(%(ids)s)", mine)
                    cur.execute("SELECT neonpro_remove_consent_evidence(%(ids)s, NULL, "
                                "'erasure')", mine)
                sql, params = self.patients_update(decisions, expired)
                cur.execute(sql, {**params, **mine, "now": now, "actor": ACTOR.id})
                outcomes.append([outcome(decisions), {
                    d.category.value: {"action": d.action.value,
                                       "legal_reference": d.legal_reference}
                    for d in decisions}])
                entries += [(str(uuid.uuid4()), str(m), len(outcomes) - 1) for m in members]
            cur.execute(self.ledger, {"clinic": self.clinic, "request": None,
                                      "actor": ACTOR.id, "entries": json.dumps(entries),
                                      "kinds": json.dumps(outcomes)})
        cur.execute(self.audit_one, {
            "clinic": self.clinic, "actor": ACTOR.id, "role": ACTOR.role,
            "action": "RETENTION", "rtype": "retention_policies", "rid": None, "patient": None,
            "status": "success", "risk": "low", "ip": None, "ua": None, "session": None,
            "request": None, "details": json.dumps({"items": len(items), "policy_batch": n})})
        self.conn.commit()


def raw_plan(conn: psycopg.Connection[Any], clinic: uuid.UUID,
             now: datetime) -> list[retention.RetentionItem]:
    items: list[retention.RetentionItem] = []
    cur = conn.cursor()
    cur.execute(f"SET ROLE {ROLES.service}")
    cur.execute("SELECT set_config('app.actor_id', %s, true)", (str(ACTOR.id),))
    policies = cur.execute(compiled(retention_repo.IN_FORCE)[0], {"clinic": clinic}).fetchall()
    queries = {"inactivity": retention_repo.INACTIVE,
               "last_clinical_entry": retention_repo.HOLD_EXPIRED,
               "consent_revoked": retention_repo.REVOKED}
    for pid, cid, category, trigger, period, action, legal in policies:
        sql = compiled(queries[trigger])[0]
        for (target,) in cur.execute(sql, {"c": cid, "cutoff": now - period}).fetchall():
            items.append(retention.RetentionItem(cid, pid, category, trigger, action, legal,
                                                 target, ""))
    conn.commit()
    return items


# ---------------------------------------------------------------------------- checks
STATE = {
    "patients anonymized": "SELECT count(*) FROM patients WHERE anonymized_at IS NOT NULL",
    "patients blocked": "SELECT count(*) FROM patients WHERE blocked_at IS NOT NULL",
    "patients with a CPF blind index":
        "SELECT count(*) FROM patients WHERE cpf_blind_index IS NOT NULL",
    "distinct record numbers": "SELECT count(DISTINCT medical_record_number) FROM patients",
    "appointments": "SELECT count(*) FROM appointments",
    "appointments blocked": "SELECT count(*) FROM appointments WHERE blocked_at IS NOT NULL",
    "consents evidence removed":
        "SELECT count(*) FROM consent_records WHERE evidence ? 'removed'",
    "ledger rows": "SELECT count(*) FROM erasure_ledger",
    "ledger patients": "SELECT count(DISTINCT patient_id) FROM erasure_ledger",
    "audit events": "SELECT count(*) FROM audit_events",
    "audit BLOCK/ANONYMIZE/DELETE of a patient with a legal reference":
        "SELECT count(*) FROM audit_events WHERE resource_type = 'patient' "
        "AND details ? 'legal_reference'",
    "audit RETENTION": "SELECT count(*) FROM audit_events WHERE action = 'RETENTION'",
}


def state(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        conn.execute(f"SET ROLE {ROLES.service}")
        return {k: int(conn.execute(q).fetchone()[0]) for k, q in STATE.items()}  # type: ignore[index]


def clone(admin_url: str, url: str) -> str:
    source = make_url(url).database
    target = f"{source}_raw"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
    return make_url(url).set(database=target).render_as_string(hide_password=False)


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ------------------------------------------------------------------------------ main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=DEFAULT_ADMIN_URL, help="server (CREATE/DROP only)")
    parser.add_argument("--patients", type=int, default=GOAL_PATIENTS)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--no-raw", action="store_true", help="skip the raw-driver path")
    parser.add_argument("--concurrent-seal", action="store_true",
                        help="seal while ours runs, as the CLI does (implies --no-raw: the "
                             "sealer's work would fall on the raw path's turns too)")
    args = parser.parse_args()
    args.no_raw = args.no_raw or args.concurrent_seal
    t_start = time.perf_counter()
    print(f"load average at start: {load_average()}")
    url = create_scratch_database(args.url)
    raw_url: str | None = None
    try:
        t0 = time.perf_counter()
        migrate.upgrade(url, ROLES)
        clinic, counts = seed(url, args.patients, args.seed)
        print(f"seeded {args.patients:,} patients in one clinic in "
              f"{time.perf_counter() - t0:.0f} s: {counts}")
        t0 = time.perf_counter()
        ring = make_keyring()
        print(f"sealed the seeding's {seal_all(url, ring):,} audit events "
              f"({time.perf_counter() - t0:.0f} s, not timed as retention)")
        if not args.no_raw:
            raw_url = clone(args.url, url)
        before = state(url)

        # ------------------------------------------- both paths, batch by batch
        # the two paths alternate batch by batch (which one goes first alternates too), so
        # the host's load, checkpoints and autovacuum weigh on both alike; ours runs each
        # batch through apply_retention, exactly as the CLI's single call loops over them
        box = Container(make_settings(url), database_url=url, keyring=ring)
        conn = psycopg.connect(raw_url) if raw_url is not None else None
        report = retention.RetentionReport()
        ours = raw = ours_cpu = 0.0
        try:
            if args.concurrent_seal:
                box.start_sealer(interval=1.0)
            t, c = time.perf_counter(), time.process_time()
            plan = retention.plan_retention(box, ACTOR, clinic)
            ours_plan = time.perf_counter() - t
            ours_cpu += time.process_time() - c
            raw_items: list[retention.RetentionItem] = []
            raw_plan_s = 0.0
            if conn is not None:
                t = time.perf_counter()
                raw_items = raw_plan(conn, clinic, datetime.now(UTC))
                raw_plan_s = time.perf_counter() - t
                assert [i.target for i in raw_items] == [i.target for i in plan]
            raw_path = Raw(conn, clinic) if conn is not None else None
            step, shown = max(1, len(plan) // 10), 0
            for n, start in enumerate(range(0, len(plan), args.batch)):
                for side in ("ours", "raw") if n % 2 == 0 else ("raw", "ours"):
                    t, c = time.perf_counter(), time.process_time()
                    if side == "ours":
                        part = retention.apply_retention(
                            box, ACTOR, plan[start:start + args.batch], args.batch)
                        ours += time.perf_counter() - t
                        ours_cpu += time.process_time() - c
                        report.applied += part.applied
                        for k, v in part.by_outcome.items():
                            report.by_outcome[k] = report.by_outcome.get(k, 0) + v
                    elif raw_path is not None:
                        raw_path.batch(raw_items[start:start + args.batch], n)
                        raw += time.perf_counter() - t
                if report.applied - shown >= step or report.applied == len(plan):
                    shown = report.applied
                    print(f"  {report.applied:,}/{len(plan):,}: ours {ours_plan + ours:.0f} s"
                          + ("" if conn is None else f", raw {raw_plan_s + raw:.0f} s")
                          + f" (load {load_average()})", flush=True)
            ours += ours_plan
            raw += raw_plan_s
            t_seal = time.perf_counter()
            box.stop_sealer()  # the background one, if any, after its pass
            sealed = box.seal_audit(ACTOR)
            ours_seal = time.perf_counter() - t_seal
            again = retention.plan_retention(box, ACTOR, clinic)
            for item in again[:5]:
                print("  still due:", item.trigger, item.reason)
        finally:
            box.close(seal=False)
            if conn is not None:
                conn.close()
        after_ours = state(url)
        print(f"ours: plan {len(plan):,} items ({ours_plan:.1f} s), outcomes "
              f"{report.by_outcome}; {ours:.1f} s, client CPU {ours_cpu:.1f} s; "
              f"seal {sealed:,} events {ours_seal:.1f} s; second plan: {len(again)} items")
        if raw_url is not None:
            after_raw = state(raw_url)
            print(f"raw:  plan {len(raw_items):,} items ({raw_plan_s:.1f} s); {raw:.1f} s; "
                  f"not sealed: the seal is the same database function on both paths")

        # ---------------------------------------------------------- report
        print()
        print(f"{'state':<66}{'before':>10}{'ours':>10}{'raw':>10}")
        same = True
        for key in STATE:
            r = after_raw[key] if raw_url is not None else None
            same = same and (r is None or r == after_ours[key])
            print(f"{key:<66}{before[key]:>10,}{after_ours[key]:>10,}"
                  f"{'-' if r is None else f'{r:,}':>10}")
        due = report.applied
        total = ours + ours_seal
        print()
        print(f"patients in the clinic: {args.patients:,}; plan items: {due:,}; "
              f"batch {args.batch}")
        print(f"ours: retention {ours:.1f} s ({args.patients / ours:,.0f} patients/s, "
              f"{due / ours:,.0f} items/s); with the seal {total:.1f} s")
        if raw_url is not None:
            print(f"raw:  retention {raw:.1f} s ({args.patients / raw:,.0f} patients/s)")
            print(f"ratio ours/raw (retention): {ours / raw:.2f}")
            print(f"same resulting state on both paths: {same}")
        scaled = total * GOAL_PATIENTS / args.patients
        verdict = "met" if scaled < GOAL_SECONDS else "NOT met"
        extrapolated = "" if args.patients == GOAL_PATIENTS else " (extrapolated linearly)"
        print(f"goal {GOAL_PATIENTS:,} patients < {GOAL_SECONDS:.0f} s: {scaled:.0f} s"
              f"{extrapolated}, {verdict}; idempotent (second plan empty): {not again}")
        print(f"total {time.perf_counter() - t_start:.0f} s")
        return 0 if verdict == "met" and not again and same else 1
    finally:
        if raw_url is not None:
            drop_scratch_database(args.url, raw_url)
        drop_scratch_database(args.url, url)
        print("scratch databases dropped")


if __name__ == "__main__":
    sys.exit(main())
