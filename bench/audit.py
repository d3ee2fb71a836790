"""Audit benchmarks: the cost of the audit trail on writes, verification speed, concurrency.

    .venv/bin/python bench/audit.py                   # 1,000,000 events, 15 s phases
    .venv/bin/python bench/audit.py --quick           # smoke run: 20,000 events, 5 s phases
    .venv/bin/python bench/audit.py --events 300000   # another verification size
    .venv/bin/python bench/audit.py --only verify     # one part (create, verify, concurrent)

Every part works in its own scratch database ``neonpro_bench_*`` (created on the server of
``--url``, which is only used to CREATE/DROP them), migrated to head and dropped at the end.

1. **Create patient.** ``register_patient`` on ``Container.uow`` (pydantic input, field
   encryption, blind indexes, INSERT ... RETURNING, the ``patients_audit`` row trigger,
   COMMIT) beside the same code "with those switched off": a second scratch database where
   the owner dropped ``patients_audit`` and a container whose cipher does not encrypt
   (``PlainCipher``; the blind indexer stays, it is one HMAC per indexed field). Also
   measured, to split the difference: our code with real encryption and no trigger, and raw
   psycopg with and without the trigger (the exact context and INSERT statements our code
   sends, captured from SQLAlchemy, with parameters prebuilt before timing; one
   transaction: context, INSERT ... RETURNING, COMMIT). The order of the sides rotates
   every round. EXPLAIN ANALYZE of the raw INSERT gives the trigger's server time alone.
2. **Sealing and ``audit verify`` on N events.** Most events are hashed in Python (the
   reference encoder, HMAC with the audit key) and COPYed sealed with user triggers off
   for the loading session only (``session_replication_role = replica``, then ``SET ROLE
   neonpro_service``: COPY refuses a table with forced row-level security unless the role
   bypasses it). Two more clinics get the very same events, unsealed: one is sealed by
   ``seal_pending`` (ours), the other by a raw psycopg loop doing the same work (read
   text rows, HMAC, ``neonpro_chain_seal``), and the ratio is printed. Then
   ``verify_chains`` (ours: every chain, reports, cuts, anchors, recorded heads) is timed
   beside a raw psycopg verifier (the same encoding and HMAC per event, nothing else) and
   a fetch-only pass over the same query, twice each, alternating; the ratio ours/raw is
   printed. Tampering (an edited ``details``, a deleted event, an edited user agent) must
   be found at the same event by the fast and the reference verifier. ``cProfile`` of
   ``verify_chains`` on one clinic.
3. **20 concurrent audited reads** of one clinic: ``get_patient`` (VIEW event in its
   transaction) from 20 threads, a sealer thread calling ``seal_pending`` every 200 ms,
   against the same reads without the audit write (repository ``get`` + commit). Halves
   alternate (audit, plain, plain, audit). A monitor samples ``pg_stat_activity`` every
   100 ms (backends inside a transaction, backends waiting on a lock) and the unsealed
   backlog. One-thread phases show the scaling. Afterwards every chain must verify and
   nothing may stay unsealed after a final ``seal_pending``.

Wall times are medians of per-call ``perf_counter`` samples; client CPU is
``time.process_time`` of this process (the server's CPU is not counted).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import hmac
import json
import os
import platform
import pstats
import random
import shlex
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq
from psycopg.types.string import TextLoader
from sqlalchemy import event as sa_event
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

from neonpro.adapters.crypto import BlindIndexer, FieldCipher
from neonpro.adapters.db import migrate
from neonpro.adapters.db.audit import _COLUMNS as _CHAIN_COLUMNS
from neonpro.adapters.db.audit import (
    _TEXT_SETTINGS,
    ChainReport,
    seal_hashes,
    seal_pending,
    verify_chains,
)
from neonpro.adapters.db.audit_text import TEXT_TYPES, audit_v2
from neonpro.adapters.db.logins import login_url
from neonpro.adapters.db.repositories.patient import ENCRYPTED, NAME
from neonpro.bootstrap import Container
from neonpro.config import Environment, Settings
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.audit_chain import ChainEvent, Hmac, keyed_event_hash
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import patients as svc

GOAL_CREATE = 1.5  # ours full / ours plain, wall
GOAL_VERIFY = 100_000  # events per second
ROLES = _setup.ROLES


# ============================================================================ helpers
def settings(url: str, *, pool_size: int | None = None) -> Settings:
    extra: dict[str, Any] = {}
    if pool_size is not None:
        extra = {"pool_size": pool_size, "max_overflow": 8}
    return Settings(environment=Environment.TEST, database_url=url,
                    _env_file=None, **extra)  # type: ignore[call-arg]


def scratch(admin: str) -> str:
    """A new scratch database, migrated to head."""
    url = _setup.create_scratch_database(admin)
    try:
        migrate.upgrade(url, ROLES)
    except BaseException:
        _setup.drop_scratch_database(admin, url)
        raise
    return url


class Scratch:
    """Scratch databases of one run; every one is dropped at the end."""

    def __init__(self, admin: str) -> None:
        self.admin = admin
        self.urls: list[str] = []

    def new(self) -> str:
        url = scratch(self.admin)
        self.urls.append(url)
        return url

    def adopt(self, url: str) -> str:
        self.urls.append(url)
        return url

    def drop(self, url: str) -> None:
        if url in self.urls:
            _setup.drop_scratch_database(self.admin, url)
            self.urls.remove(url)

    def drop_all(self) -> None:
        for url in list(self.urls):
            self.drop(url)


def dbname(url: str) -> str:
    return make_url(url).database or "?"


def add_clinic(url: str, clinic: uuid.UUID, name: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(f"SET ROLE {ROLES.service}")
        conn.execute("SELECT set_config('app.actor_id', %s, false)",
                     (str(SystemActors.DEMO_SEED.id),))
        conn.execute("INSERT INTO clinics (id, name, timezone) VALUES (%s, %s, %s)",
                     (clinic, name, "America/Sao_Paulo"))


class PlainCipher:
    """FieldCipher-compatible, but stores the plaintext's UTF-8 bytes: no encryption."""

    __slots__ = ()
    active_key_id = "plain"

    def encrypt(self, plaintext: str, *, table: str, column: str, row_id: uuid.UUID) -> bytes:
        return plaintext.encode()

    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: uuid.UUID) -> str:
        return bytes(blob).decode()


class PlainContainer(Container):
    """Our container, with a cipher that does not encrypt."""

    @cached_property
    def cipher(self) -> FieldCipher:
        return PlainCipher()  # type: ignore[return-value]


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def fmt_n(x: float) -> str:
    return f"{x:,.0f}"


# ============================================================================ 1. create
@dataclass
class Side:
    name: str
    fn: Callable[[int], object]
    samples: list[int] = field(default_factory=list)
    cpu_s: float = 0.0
    calls: int = 0

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples) / 1000

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.calls * 1e6


def run_batch(side: Side, start: int, n: int, *, record: bool = True) -> None:
    gc.collect()
    fn, clock = side.fn, time.perf_counter_ns
    samples: list[int] = []
    cpu0 = time.process_time()
    for i in range(start, start + n):
        t0 = clock()
        fn(i)
        samples.append(clock() - t0)
    cpu = time.process_time() - cpu0
    if record:
        side.samples.extend(samples)
        side.cpu_s += cpu
        side.calls += n


def create_input(n: int) -> PatientCreate:
    return PatientCreate(
        full_name=f"Paciente Auditoria {n} da Silva", given_names=["Paciente", "Auditoria"],
        family_name="da Silva", birth_date=date(1985, 5, 17), gender="female",
        cpf=_setup.cpf(n), cns=_setup.cns(n), phone_primary="11987654321",
        email=f"audit{n}@example.com.br", city="São Paulo", state="SP",
        postal_code="01310100", patient_notes="Primeira consulta: avaliação facial.",
    )


def capture(container: Container, work: Callable[[], object]) -> list[tuple[str, Any]]:
    """The (statement, parameters) our code hands to psycopg while ``work`` runs."""
    engine = container.database.engine("app")
    seen: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, parameters: Any,
                 context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    sa_event.listen(engine, "before_cursor_execute", listener)
    try:
        work()
    finally:
        sa_event.remove(engine, "before_cursor_execute", listener)
    return seen


def bench_create(dbs: Scratch, args: argparse.Namespace) -> dict[str, Any]:
    print("\n== 1. create patient: audit trigger and encryption on vs off ==", flush=True)
    ops, rounds, warmup = args.ops, args.rounds, 20
    url_full, url_plain = dbs.new(), dbs.new()
    clinic = uuid.uuid4()
    for url in (url_full, url_plain):
        add_clinic(url, clinic, "Clínica Auditoria")
    with psycopg.connect(url_plain) as conn:
        conn.execute(f"SET ROLE {ROLES.owner}")
        conn.execute("DROP TRIGGER patients_audit ON patients")
    keyring = _setup.make_keyring()
    cipher, blind = FieldCipher(keyring), BlindIndexer(keyring)
    full = Container(settings(url_full), database_url=url_full, keyring=keyring)
    plain = PlainContainer(settings(url_plain), database_url=url_plain, keyring=keyring)
    notrig = Container(settings(url_plain), database_url=url_plain, keyring=keyring)
    actor = Actor(uuid.uuid4(), "admin", ip_address="10.20.30.40",
                  request_id=str(uuid.uuid4()), user_agent="neonpro-bench/1.0",
                  session_id=uuid.uuid4().hex)
    counter = iter(range(10**6, 10**9))

    # the exact statements our code sends, to replay them raw
    seen = capture(full, lambda: svc.register_patient(full.uow(clinic, actor),
                                                      create_input(next(counter))))
    ctx_sql, ctx_params = next((s, p) for s, p in seen if "neonpro_bind_context" in s)
    ins_sql, ins_template = next((s, p) for s, p in seen if s.startswith("INSERT INTO patients"))
    per_row = {"id", "medical_record_number", "cpf_encrypted", "cpf_blind_index",
               "cns_encrypted", "cns_blind_index", "patient_notes_encrypted", "email",
               "full_name"}
    missing = per_row - set(ins_template)
    if missing:
        raise RuntimeError(f"captured INSERT lacks parameters {sorted(missing)}: "
                           f"{sorted(ins_template)}")

    def raw_params(n: int) -> dict[str, Any]:
        data = create_input(n)
        pid = uuid.uuid4()

        def enc(name: str, value: str) -> bytes:
            return cipher.encrypt(value, table=NAME, column=ENCRYPTED[name], row_id=pid)

        assert data.cpf and data.cns and data.patient_notes
        return {**ins_template, "id": pid, "medical_record_number": "P-" + pid.hex[:12].upper(),
                "cpf_encrypted": enc("cpf", data.cpf),
                "cpf_blind_index": blind.index("cpf", data.cpf),
                "cns_encrypted": enc("cns", data.cns),
                "cns_blind_index": blind.index("cns", data.cns),
                "patient_notes_encrypted": enc("patient_notes", data.patient_notes),
                "email": data.email, "full_name": data.full_name}

    per_side = warmup + rounds * ops
    opts = {"application_name": "neonpro-bench-raw",
            "options": "-c statement_timeout=60000 -c TimeZone=UTC"}
    # the raw side connects as the application's login too (one login per role)
    raw_full = psycopg.connect(login_url(url_full, ROLES.app), **opts)
    raw_plain = psycopg.connect(login_url(url_plain, ROLES.app), **opts)

    def ours(box: Container) -> Callable[[int], object]:
        inputs = [create_input(next(counter)) for _ in range(per_side)]
        return lambda i: svc.register_patient(box.uow(clinic, actor), inputs[i])

    def raw(conn: psycopg.Connection[Any]) -> Callable[[int], object]:
        rows = [raw_params(next(counter)) for _ in range(per_side)]
        cur = conn.cursor()

        def fn(i: int) -> object:
            cur.execute(ctx_sql, ctx_params)
            cur.execute(ins_sql, rows[i])
            row = cur.fetchone()
            conn.commit()
            return row
        return fn

    sides = [
        Side("ours full: encryption + audit trigger", ours(full)),
        Side("ours plain: no encryption, no trigger", ours(plain)),
        Side("ours: encryption, no trigger", ours(notrig)),
        Side("raw psycopg, trigger on", raw(raw_full)),
        Side("raw psycopg, trigger off", raw(raw_plain)),
    ]
    print(f"{rounds} rounds x {ops} creates per side, {warmup} warm-up; order rotates per round",
          flush=True)
    for side in sides:
        run_batch(side, 0, warmup, record=False)
    for r in range(rounds):
        order = sides[r % len(sides):] + sides[: r % len(sides)]
        for side in order:
            run_batch(side, warmup + r * ops, ops)

    # sanity: one audit event per trigger-on create, none in the plain database
    with psycopg.connect(url_full) as conn:
        events_full = conn.execute("SELECT count(*) FROM audit_events WHERE resource_type = "
                                   "'patients' AND action = 'CREATE'").fetchone()[0]
        patients_full = conn.execute("SELECT count(*) FROM patients").fetchone()[0]
        stored = conn.execute("SELECT cpf_encrypted FROM patients LIMIT 1").fetchone()[0]
    with psycopg.connect(url_plain) as conn:
        events_plain = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
        patients_plain = conn.execute("SELECT count(*) FROM patients").fetchone()[0]
        plain_cpf = conn.execute(
            "SELECT cpf_encrypted FROM patients WHERE get_byte(cpf_encrypted, 0) <> 1 LIMIT 1"
        ).fetchone()
    assert events_full == patients_full, (events_full, patients_full)
    assert events_plain == 0, events_plain
    assert bytes(stored)[0] == 1  # a real AES-GCM blob (version byte)
    assert plain_cpf is not None and bytes(plain_cpf[0]).isdigit()  # the stub stored digits

    # the server's own time per INSERT (no commit, no fsync): EXPLAIN ANALYZE reports the
    # AFTER trigger's time separately (it includes the audit INSERT and its own trigger)
    k = min(200, ops)
    explain_rows = [raw_params(next(counter)) for _ in range(k)]
    server: dict[str, list[float]] = {"exec on": [], "trigger": [], "exec off": []}
    for conn, label in ((raw_full, "on"), (raw_plain, "off")):
        cur = psycopg.ClientCursor(conn)
        for i in range(k):
            cur.execute(ctx_sql, ctx_params)
            plan = [r[0] for r in cur.execute("EXPLAIN (ANALYZE) " + ins_sql, explain_rows[i])]
            conn.rollback()
            for line in plan:
                if line.startswith("Execution Time:"):
                    server[f"exec {label}"].append(float(line.split()[2]) * 1000)
                elif line.startswith("Trigger patients_audit:"):
                    server["trigger"].append(float(line.split("time=")[1].split()[0]) * 1000)
        cur.close()

    f, p, nt, rf, rp = sides
    head = f"{'create patient':<40} {'wall µs':>9} {'CPU µs':>8}"
    print()
    print(head)
    print("-" * len(head))
    for s in sides:
        print(f"{s.name:<40} {s.median_us:>9.0f} {s.cpu_us:>8.0f}")
    print()
    ratio_plain = f.median_us / p.median_us
    ratio_raw = f.median_us / rf.median_us
    print(f"{'ratio':<40} {'wall':>9} {'CPU':>8}")
    print(f"{'ours full / ours plain':<40} {ratio_plain:>9.2f} {f.cpu_us / p.cpu_us:>8.2f}"
          f"   goal <= {GOAL_CREATE}: {'met' if ratio_plain <= GOAL_CREATE else 'NOT met'}")
    print(f"{'ours full / raw (trigger on)':<40} {ratio_raw:>9.2f} {f.cpu_us / rf.cpu_us:>8.2f}")
    print(f"{'ours plain / raw (trigger off)':<40} {p.median_us / rp.median_us:>9.2f} "
          f"{p.cpu_us / rp.cpu_us:>8.2f}")
    print(f"\nfull - plain = {f.median_us - p.median_us:.0f} µs wall, "
          f"{f.cpu_us - p.cpu_us:.0f} µs client CPU. Parts: the audit trigger's server time "
          f"~ raw on - raw off = {rf.median_us - rp.median_us:.0f} µs wall (ours: full - "
          f"no trigger = {f.median_us - nt.median_us:.0f} µs); encryption (3 AES-GCM "
          f"encrypts, 3 decrypts of the RETURNING row) ~ CPU(ours encryption, no trigger) - "
          f"CPU(plain) = {nt.cpu_us - p.cpu_us:.0f} µs")
    print(f"server time per INSERT (EXPLAIN ANALYZE, median of {k}, no commit): "
          f"{statistics.median(server['exec on']):.0f} µs with the trigger, of which the "
          f"trigger {statistics.median(server['trigger']):.0f} µs; "
          f"{statistics.median(server['exec off']):.0f} µs without")
    print(f"checked: {events_full:,} CREATE events for {patients_full:,} patients with the "
          f"trigger, 0 events in the trigger-off database ({patients_plain:,} patients); "
          "stub-cipher rows hold plaintext digits")
    print("raw replays our exact context + INSERT ... RETURNING statements with parameters "
          "encrypted before timing; ours validates nothing in the timed call (inputs are "
          "built before) but encrypts, indexes and maps the RETURNING row (decrypts its 3 "
          "encrypted values).")
    raw_full.close()
    raw_plain.close()
    for box in (full, plain, notrig):
        box.close(seal=False)
    dbs.drop(url_full)
    dbs.drop(url_plain)
    return {"full_plain": ratio_plain, "full_raw": ratio_raw}


# ============================================================================ 2. verify
GIVEN_UAS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "NeonPro-Clínica-Desktop/2.3 (Windows 11; São Paulo)",  # non-ASCII: octet lengths
)
# what the row trigger lists for a patient created through the API (non-null columns)
CREATE_FIELDS = sorted((
    "allergies", "accessibility_needs", "birth_date", "chronic_conditions", "city", "clinic_id",
    "cns_blind_index", "cns_encrypted", "country", "cpf_blind_index", "cpf_encrypted",
    "created_at", "created_by", "current_medications", "data_consent_status",
    "deceased_indicator", "email", "external_ids", "family_name", "full_name", "gender",
    "given_names", "id", "is_active", "language_preference", "medical_record_number",
    "nationality", "patient_notes_encrypted", "phone_primary", "postal_code", "state",
    "total_appointments", "total_no_shows",
))
UPDATE_FIELDS = ("phone_primary", "email", "address_line1", "city", "postal_code",
                 "allergies", "patient_notes_encrypted", "insurance_number", "marital_status")
APPT_FIELDS = ("status", "starts_at", "ends_at", "notes_encrypted", "professional_id")
ROLES_MIX = ("professional", "professional", "receptionist", "receptionist", "admin")
BASE_COLS = ("clinic_id", "id", "occurred_at", "actor_id", "actor_role", "action",
             "resource_type", "resource_id", "patient_ref", "status", "risk_level",
             "ip_address", "user_agent", "session_id", "request_id", "details")
_COLUMNS = _CHAIN_COLUMNS["audit_events"]
SEALED_COLS = tuple(c.strip() for c in _COLUMNS.split(","))


def add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February: PostgreSQL's date + interval gives the 28th
        return d.replace(year=d.year + years, day=28)


def gen_events(clinic: uuid.UUID, n: int, seed: int, ref_key: bytes,
               start: datetime) -> Iterator[tuple[Any, ...]]:
    """``n`` realistic events of one clinic in time order: BASE_COLS + retain_until.

    Mix: 55% patient record reads (VIEW, details {}), 10% CPF lookups, 7% list reads,
    15% patient updates and 5% creates written by the row trigger (details list the
    changed fields), 8% appointment changes. Staff have a role, an IP, a browser and a
    session; every request has its own id.
    """
    rng = random.Random(seed)

    def rid() -> uuid.UUID:
        return uuid.UUID(int=rng.getrandbits(128), version=4)

    staff = []
    for k in range(40):
        net = "10" if k % 3 else "189"
        ip = f"{net}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if k % 7 == 0:  # some IPv6, one IPv4-mapped: the formats the encoders must agree on
            ip = f"2804:14c:{rng.randrange(0x10000):x}:4000::{rng.randrange(1, 0x10000):x}"
        elif k == 1:
            ip = "::ffff:" + ip
        staff.append((rid(), ROLES_MIX[k % len(ROLES_MIX)], ip, rng.choice(GIVEN_UAS),
                      rid().hex))
    patients = []
    for _ in range(5000):
        pid = rid()
        ref = hmac.new(ref_key, f"patient_ref:{pid}".encode(), hashlib.sha256).digest()
        patients.append((str(pid), ref))
    occurred = start
    for _ in range(n):
        occurred += timedelta(microseconds=rng.randrange(1, 3_000_000))
        actor, role, ip, ua, session = staff[rng.randrange(len(staff))]
        request = str(rid())
        pid, ref = patients[rng.randrange(len(patients))]
        r = rng.random()
        if r < 0.55:
            row = ("VIEW", "patient", pid, ref, {}, 6)
        elif r < 0.65:
            row = ("VIEW", "patient", pid, ref, {"lookup": "cpf", "found": True}, 6)
        elif r < 0.72:
            row = ("VIEW", "patients", None, None,
                   {"returned": 20, "filters": rng.choice(([], ["name"], ["is_active", "name"]))},
                   6)
        elif r < 0.87:
            fields = sorted(rng.sample(UPDATE_FIELDS, rng.randrange(1, 4)))
            row = ("UPDATE", "patients", pid, ref, {"fields": fields, "source": "trigger"}, 10)
        elif r < 0.92:
            row = ("CREATE", "patients", str(rid()), ref,
                   {"fields": CREATE_FIELDS, "source": "trigger"}, 10)
        else:
            fields = sorted(rng.sample(APPT_FIELDS, rng.randrange(1, 4)))
            row = (rng.choice(("CREATE", "UPDATE")), "appointments", str(rid()), ref,
                   {"fields": fields, "source": "trigger"}, 10)
        action, rtype, resource, pref, details, years = row
        yield (clinic, rid(), occurred, actor, role, action, rtype, resource, pref, "success",
               "low", ip, ua, session, request, details,
               add_years(occurred.astimezone(UTC).date(), years))


def load_sealed(url: str, clinic: uuid.UUID, n: int, seed: int, ref_key: bytes,
                start: datetime, keyring: Any) -> float:
    """Hash ``n`` events in Python (the reference encoder, the audit key) and COPY them
    sealed; user triggers off for this session (superuser: a bench's loading shortcut)."""
    key_id, key = keyring.active_audit_key
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")  # superuser only; this session
        # COPY refuses tables with (forced) row-level security unless the role bypasses it:
        # the owner cannot COPY into audit_events, the service role (BYPASSRLS) can
        conn.execute(f"SET ROLE {ROLES.service}")
        cols = ", ".join(SEALED_COLS)
        with conn.cursor().copy(f"COPY audit_events ({cols}) FROM STDIN") as copy:
            prev: bytes | None = None
            write = copy.write_row
            for seq, e in enumerate(gen_events(clinic, n, seed, ref_key, start), 1):
                (cid, eid, occ, actor, role, action, rtype, res, pref, status, risk, ip, ua,
                 session, request, details, retain) = e
                ev = ChainEvent(cid, seq, eid, occ, actor, role, action, rtype, res, pref,
                                status, risk, ip, ua, session, request, details, retain,
                                prev, None)
                h = keyed_event_hash(key, ev, key_id, seq, prev)
                write((cid, seq, eid, occ, actor, role, action, rtype, res, pref, status, risk,
                       ip, ua, session, request, json.dumps(details), retain, prev, h, key_id))
                prev = h
        conn.commit()
    return time.perf_counter() - t0


def load_unsealed(url: str, clinic: uuid.UUID, n: int, seed: int, ref_key: bytes,
                  start: datetime) -> float:
    """COPY ``n`` events unsealed (service role, triggers off: the events carry their own
    actors, which no one transaction's bound context could vouch for)."""
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"SET ROLE {ROLES.service}")
        cols = ", ".join((*BASE_COLS, "retain_until"))
        with conn.cursor().copy(f"COPY audit_events ({cols}) FROM STDIN") as copy:
            for e in gen_events(clinic, n, seed, ref_key, start):
                copy.write_row((*e[:15], json.dumps(e[15]), e[16]))
        conn.commit()
    return time.perf_counter() - t0


_CHAIN_QUERY = (f"SELECT {_COLUMNS} FROM audit_events WHERE clinic_id = %s "
                "AND seq IS NOT NULL ORDER BY seq")
_UNSEALED = (f"SELECT {_COLUMNS} FROM audit_events WHERE clinic_id = %s "
             "AND seq IS NULL ORDER BY occurred_at, id LIMIT %s")


def _service(url: str) -> str:
    return login_url(url, ROLES.service).replace("postgresql+psycopg://", "postgresql://")


def raw_seal(url: str, clinic: uuid.UUID, keyring: Any, batch: int = 5000) -> int:
    """The raw-driver sealer: one psycopg connection of the service login, prepared
    statements, the same encoding and function as ours, no pools or sessions."""
    key_id, key = keyring.active_audit_key
    hasher = Hmac(key)
    total = 0
    with psycopg.connect(_service(url)) as conn:
        for name in TEXT_TYPES:
            conn.adapters.register_loader(name, TextLoader)
        while True:
            conn.execute(_TEXT_SETTINGS)
            seq, head = conn.execute("SELECT seq, hash FROM neonpro_chain_head(%s, %s)",
                                     ("audit_events", clinic)).fetchone()  # type: ignore[misc]
            rows = conn.execute(_UNSEALED, (clinic, batch)).fetchall()
            if not rows:
                conn.rollback()
                return total
            ids, hashes = seal_hashes(rows, audit_v2, key_id, hasher, seq,
                                      None if head is None else bytes.fromhex(head[2:]))
            conn.execute("SELECT neonpro_chain_seal(%s, %s, %s, %s, %s, %s, %s)",
                         ("audit_events", clinic, seq,
                          None if head is None else bytes.fromhex(head[2:]), key_id, ids,
                          hashes))
            conn.commit()
            total += len(rows)


def raw_verify(url: str, keyring: Any, clinics: list[uuid.UUID], itersize: int = 5000) -> int:
    """The raw-driver verifier: a server cursor per chain, every column as text, the same
    encoding, an HMAC and a comparison per event; no reports, cuts, anchors or checkpoints."""
    hashers = {kid: Hmac(k) for kid, k in keyring.audit_keys.items()}
    total = 0
    with psycopg.connect(_service(url)) as conn:
        for name in TEXT_TYPES:
            conn.adapters.register_loader(name, TextLoader)
        conn.execute(_TEXT_SETTINGS)
        for clinic in clinics:
            prev = None
            with conn.cursor(name=f"raw_{clinic.hex}") as cursor:
                cursor.itersize = itersize
                cursor.execute(_CHAIN_QUERY, (clinic,))
                for row in cursor:
                    computed = hashers[row[-1]].hexdigest(
                        audit_v2(row, row[-1], str(row[1]), prev).encode())
                    if computed != row[-2][2:]:
                        raise AssertionError(f"raw verify: broken at {row[1]}")
                    prev = computed
                    total += 1
        conn.rollback()
    return total


def fetch_only(url: str, clinics: list[uuid.UUID], itersize: int = 5000) -> int:
    """The verification query over every chain, rows fetched as text and dropped."""
    total = 0
    with psycopg.connect(_service(url)) as conn:
        for name in TEXT_TYPES:
            conn.adapters.register_loader(name, TextLoader)
        conn.execute(_TEXT_SETTINGS)
        for clinic in clinics:
            with conn.cursor(name=f"fetch_{clinic.hex}") as cursor:
                cursor.itersize = itersize
                cursor.execute(_CHAIN_QUERY, (clinic,))
                for _ in cursor:
                    total += 1
        conn.rollback()
    return total


def top_costs(prof: cProfile.Profile, events: int, limit: int = 14) -> list[str]:
    stats = pstats.Stats(prof)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = []
    for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = "~" if filename == "~" else f"{Path(filename).name}:{line}"
        rows.append((tt, ct, nc, f"{func} ({where})"))
    rows.sort(reverse=True)
    out = [f"  {'function':<58} {'calls':>10} {'own s':>7} {'own %':>6} {'µs/event':>9} "
           f"{'cum s':>7}"]
    for tt, ct, nc, name in rows[:limit]:
        out.append(f"  {name[:58]:<58} {nc:>10,} {tt:>7.2f} {100 * tt / total:>5.1f}% "
                   f"{tt / events * 1e6:>9.2f} {ct:>7.2f}")
    out.append(f"  total profiled time {total:.2f} s for {events:,} events "
               f"({total / events * 1e6:.1f} µs/event under cProfile)")
    return out


def tamper(url: str, sql: str, params: tuple[Any, ...]) -> None:
    """Change a sealed event behind the guard (superuser, user triggers off)."""
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
        conn.execute(sql, params)
        conn.execute("ALTER TABLE audit_events ENABLE TRIGGER USER")
        conn.execute("ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_guard")
        conn.execute("ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate")


def bench_verify(dbs: Scratch, args: argparse.Namespace) -> dict[str, Any]:
    n_total = args.events
    print(f"\n== 2. sealing and audit verify on {n_total:,} events (keyed chain) ==",
          flush=True)
    url = dbs.new()
    n_seal = min(20_000, max(n_total // 20, 500))  # per sealer (ours, raw): same events
    n_py = n_total - 2 * n_seal
    sizes = [n_py // 2, n_py * 3 // 10]
    sizes.append(n_py - sum(sizes))
    rng = random.Random(20261127)
    clinics = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(5)]
    _big, mid, small, ours_c, raw_c = clinics
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with psycopg.connect(url) as conn:  # the real patient_ref key of this database
        k = conn.execute("SELECT inner_pad FROM audit_ref_keys WHERE id = 1").fetchone()[0]
    ref_key = bytes(b ^ 0x36 for b in bytes(k))[:32]
    db_box = Container(settings(url), database_url=url, keyring=_setup.make_keyring())
    keyring = db_box.keyring

    py_s = 0.0
    for i, (clinic, n) in enumerate(zip(clinics[:3], sizes, strict=True)):
        py_s += load_sealed(url, clinic, n, 100 + i, ref_key, start, keyring)
        print(f"  python-sealed clinic {i + 1}: {n:,} events ({py_s:.0f} s so far)", flush=True)
    for clinic in (ours_c, raw_c):  # the very same events (same seed) in two clinics
        load_unsealed(url, clinic, n_seal, 200, ref_key, start)
    db = db_box.database
    actor = SystemActors.CLI
    # sealing, ours and raw, alternating halves would need unsealing: one run each, raw first
    t0 = time.perf_counter()
    raw_sealed = raw_seal(url, raw_c, keyring)
    raw_seal_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    sealed = seal_pending(db, keyring, SystemActors.SCHEDULER, ours_c)
    seal_s = time.perf_counter() - t0
    assert sealed == raw_sealed == n_seal, (sealed, raw_sealed, n_seal)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) audit_events")
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('audit_events')), "
                            "pg_size_pretty(pg_relation_size('audit_events'))").fetchone()
        same_hashes = conn.execute(
            "SELECT count(*) FROM audit_events a JOIN audit_events b ON a.seq = b.seq "
            "AND a.id = b.id WHERE a.clinic_id = %s AND b.clinic_id = %s", (ours_c, raw_c),
        ).fetchone()[0]
    print(f"loaded {n_total:,} events ({size[0]} with indexes, heap {size[1]})")
    print(f"  reference encoder + HMAC + COPY sealed (triggers off): {n_py:,} in {py_s:.1f} s "
          f"= {fmt_n(n_py / py_s)} events/s")
    print(f"\nsealing {n_seal:,} events of one clinic (batches of 5000):")
    print(f"  seal_pending (ours):      {seal_s:6.2f} s = {fmt_n(n_seal / seal_s)} events/s")
    print(f"  raw psycopg, same work:   {raw_seal_s:6.2f} s = {fmt_n(n_seal / raw_seal_s)} "
          f"events/s")
    print(f"  ratio ours / raw (time): {seal_s / raw_seal_s:.2f}x (the same {same_hashes:,} "
          "events, in the same order, in both chains)")

    # ---- verification timings -------------------------------------------------------------
    results: dict[str, tuple[float, float, int]] = {}
    targets = list(clinics)

    def timed(name: str, work: Callable[[], int]) -> None:
        gc.collect()
        cpu0, t0 = time.process_time(), time.perf_counter()
        n = work()
        results[name] = (time.perf_counter() - t0, time.process_time() - cpu0, n)
        print(f"  {name}: done", flush=True)

    reports: list[ChainReport] = []

    def ours_verify() -> int:
        reports[:] = verify_chains(db, actor, keyring)
        return sum(r.sealed for r in reports if r.chain == "audit_events")

    for _round in range(2):  # alternate, and keep the better of two of each
        for name, work in (("fetch only (raw, text)", lambda: fetch_only(url, targets)),
                           ("raw verify (psycopg + HMAC)", lambda: raw_verify(url, keyring,
                                                                             targets)),
                           ("verify_chains (ours)", ours_verify)):
            before = results.get(name)
            timed(name, work)
            if before is not None and before[0] < results[name][0]:
                results[name] = before
    ok = all(r.ok and r.unsealed == 0 for r in reports)

    print()
    head = (f"{'audit verify, ' + fmt_n(n_total) + ' events':<34} {'wall s':>7} {'CPU s':>7} "
            f"{'events/s':>10} {'µs/event':>9}")
    print(head)
    print("-" * len(head))
    for name, (wall, cpu, n) in results.items():
        print(f"{name:<34} {wall:>7.2f} {cpu:>7.2f} {fmt_n(n / wall):>10} "
              f"{wall / n * 1e6:>9.2f}")
    ours = results["verify_chains (ours)"]
    raw = results["raw verify (psycopg + HMAC)"]
    ours_rate, raw_rate = ours[2] / ours[0], raw[2] / raw[0]
    print(f"\nverify_chains: {fmt_n(ours_rate)} events/s; goal >= {fmt_n(GOAL_VERIFY)}: "
          f"{'met' if ours_rate >= GOAL_VERIFY else 'NOT met'} (chains ok: {ok}, "
          f"{len(reports)} chains); raw verify {fmt_n(raw_rate)} events/s; "
          f"ratio ours / raw (time): {ours[0] / raw[0]:.2f}x")

    # ---- where the time goes ------------------------------------------------------------
    prof = cProfile.Profile()
    prof.enable()
    verify_chains(db, actor, keyring, ours_c)
    prof.disable()
    print(f"\ncProfile of verify_chains on one clinic ({n_seal:,} events), top own time:")
    for line in top_costs(prof, n_seal):
        print(line)

    # ---- tampering is found, by the fast and the reference verifier alike -----------------
    tamper(url, "UPDATE audit_events SET details = details || '{\"source\": \"api\"}' "
                "WHERE clinic_id = %s AND seq = %s", (ours_c, n_seal // 2))
    tamper(url, "DELETE FROM audit_events WHERE clinic_id = %s AND seq = %s",
           (small, sizes[2] // 3))
    tamper(url, "UPDATE audit_events SET user_agent = user_agent || ' ' WHERE clinic_id = %s "
                "AND seq = %s", (mid, 7))
    tampered = []
    for clinic in (ours_c, small, mid):
        fast = next(r for r in verify_chains(db, actor, keyring, clinic)
                    if r.clinic_id == clinic and r.chain == "audit_events")
        ref = next(r for r in verify_chains(db, actor, keyring, clinic, reference=True)
                   if r.clinic_id == clinic and r.chain == "audit_events")
        tampered.append((fast.broken_at, (fast.broken_at, fast.reason) == (ref.broken_at,
                                                                            ref.reason)))
    print("\ntampered (details edited / event deleted / user agent edited): "
          + "; ".join(f"broken_at {x}, reference agrees {s}" for x, s in tampered))
    tamper_ok = all(s and x is not None for x, s in tampered)
    db_box.close(seal=False)
    dbs.drop(url)
    return {"rate": ours_rate, "raw": raw_rate, "ok": ok, "seal_rate": n_seal / seal_s,
            "raw_seal_rate": n_seal / raw_seal_s, "tamper_ok": tamper_ok}


# ============================================================================ 3. concurrency
@dataclass
class Phase:
    name: str
    latencies: list[int] = field(default_factory=list)
    seconds: float = 0.0
    cpu_s: float = 0.0
    errors: int = 0
    in_tx: list[int] = field(default_factory=list)
    lock_waits: list[int] = field(default_factory=list)
    backlog: list[int] = field(default_factory=list)
    # what in-transaction backends were doing, over all samples ("CPU" = no wait event)
    waits: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def tps(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


class Sealer(threading.Thread):
    def __init__(self, db: Any, keyring: Any, period: float) -> None:
        super().__init__(daemon=True, name="sealer")
        self.db, self.keyring, self.period = db, keyring, period
        self.stop = threading.Event()
        self.calls = 0
        self.sealed = 0
        self.durations: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                self.sealed += seal_pending(self.db, self.keyring, SystemActors.SCHEDULER)
            except Exception as exc:
                self.errors.append(repr(exc)[:200])
            self.durations.append(time.perf_counter() - t0)
            self.calls += 1
            self.stop.wait(self.period)


class Monitor(threading.Thread):
    """Samples the server: backends inside a transaction, lock waits, unsealed backlog."""

    def __init__(self, url: str, period: float = 0.1) -> None:
        super().__init__(daemon=True, name="monitor")
        self.url, self.period = url, period
        self.stop = threading.Event()
        self.phase: Phase | None = None

    def run(self) -> None:
        name = dbname(self.url)
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                phase = self.phase
                if phase is not None:
                    rows = conn.execute(
                        "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), "
                        "count(*) FROM pg_stat_activity WHERE datname = %s "
                        "AND application_name = 'neonpro' AND backend_type = 'client backend' "
                        "AND xact_start IS NOT NULL GROUP BY 1", (name,)).fetchall()
                    backlog = conn.execute(
                        "SELECT count(*) FROM audit_events WHERE seq IS NULL").fetchone()[0]
                    phase.in_tx.append(sum(n for _, n in rows))
                    phase.lock_waits.append(sum(n for w, n in rows if w.startswith("Lock:")))
                    phase.waits.update({w: n for w, n in rows})
                    phase.backlog.append(backlog)
                self.stop.wait(self.period)


def run_phase(phase: Phase, fn: Callable[[uuid.UUID], object], pids: list[uuid.UUID],
              threads: int, seconds: float, monitor: Monitor) -> None:
    barrier = threading.Barrier(threads + 1)
    deadline = [0.0]
    lat = phase.latencies

    def worker(k: int) -> None:
        i = k
        n = len(pids)
        barrier.wait()
        clock = time.perf_counter_ns
        end = deadline[0]
        while time.perf_counter() < end:
            pid = pids[(i * 7919) % n]
            t0 = clock()
            try:
                fn(pid)
            except Exception:
                phase.errors += 1
                continue
            finally:
                i += threads
            lat.append(clock() - t0)

    pool = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    gc.collect()
    deadline[0] = time.perf_counter() + seconds
    cpu0, t0 = time.process_time(), time.perf_counter()
    monitor.phase = phase
    barrier.wait()
    for t in pool:
        t.join()
    monitor.phase = None
    phase.seconds += time.perf_counter() - t0
    phase.cpu_s += time.process_time() - cpu0


def bench_concurrent(dbs: Scratch, args: argparse.Namespace) -> dict[str, Any]:
    threads, seconds = args.threads, args.seconds
    print(f"\n== 3. {threads} concurrent audited reads of one clinic ==", flush=True)
    ds = _setup.load(dbs.admin, args.patients, 1, log=False)
    url = dbs.adopt(ds.url)
    clinic = ds.bench_clinic
    pids = [pid for pid, _ in ds.bench_patients]
    box = Container(settings(url, pool_size=threads + 4), database_url=url, keyring=ds.keyring)
    db = box.database
    pre = seal_pending(db, box.keyring, SystemActors.SCHEDULER)
    actor = Actor(uuid.uuid4(), "professional", ip_address="10.1.2.3",
                  user_agent=GIVEN_UAS[0], session_id=uuid.uuid4().hex)

    def audited(pid: uuid.UUID) -> object:
        return svc.get_patient(box.uow(clinic, actor), pid)

    def plain(pid: uuid.UUID) -> object:
        with box.uow(clinic, actor) as uow:
            patient = uow.patients.get(pid)
            uow.commit()
        return patient

    print(f"{len(pids):,} patients in the clinic ({pre:,} load events sealed first); "
          f"{threads} threads, pool {threads + 4}+8, sealer every 200 ms; "
          f"halves alternate audit/plain/plain/audit, {seconds:g} s per mode", flush=True)
    monitor = Monitor(url)
    monitor.start()
    sealer = Sealer(db, box.keyring, 0.2)
    sealer.start()
    # warm-up: every connection of the pool opened, statements prepared
    warm = Phase("warm")
    run_phase(warm, audited, pids, threads, 1.0, monitor)
    run_phase(Phase("warm"), plain, pids, threads, 1.0, monitor)
    with_audit, without = Phase("get_patient (VIEW event)"), Phase("no audit write")
    half = seconds / 2
    for phase, fn in ((with_audit, audited), (without, plain), (without, plain),
                      (with_audit, audited)):
        run_phase(phase, fn, pids, threads, half, monitor)
        print(f"  {phase.name}: {phase.seconds:.1f} s so far", flush=True)
    one_audit, one_plain = Phase("get_patient, 1 thread"), Phase("no audit, 1 thread")
    single = max(2.0, seconds / 3)
    run_phase(one_audit, audited, pids, 1, single, monitor)
    run_phase(one_plain, plain, pids, 1, single, monitor)
    sealer.stop.set()
    sealer.join()
    monitor.stop.set()
    monitor.join()

    final = seal_pending(db, box.keyring, SystemActors.SCHEDULER)
    reports = verify_chains(db, SystemActors.CLI, box.keyring)
    # the audit trail's chains (the synthetic patients carry a consent status but no
    # consent rows, which verify rightly names on the consent chains)
    reports = [r for r in reports if r.chain == "audit_events"]
    chain_ok = all(r.ok for r in reports) and all(r.unsealed == 0 for r in reports)
    events = sum(r.sealed for r in reports)
    with psycopg.connect(url) as conn:
        views = conn.execute("SELECT count(*) FROM audit_events WHERE action = 'VIEW' "
                             "AND actor_id = %s", (actor.id,)).fetchone()[0]
    audited_reads = warm.count + with_audit.count + one_audit.count
    print()
    head = (f"{'20 threads' if threads == 20 else str(threads) + ' threads':<28} "
            f"{'tx/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU µs/tx':>9} {'in tx':>6} "
            f"{'max':>4} {'lock w.':>7} {'errors':>6}")
    print(head)
    print("-" * len(head))
    for p in (with_audit, without, one_audit, one_plain):
        lat_ms = [x / 1e6 for x in p.latencies]
        in_tx = statistics.fmean(p.in_tx) if p.in_tx else float("nan")
        print(f"{p.name:<28} {p.tps:>7.0f} {pct(lat_ms, 0.5):>7.2f} {pct(lat_ms, 0.99):>7.2f} "
              f"{p.cpu_s / max(p.count, 1) * 1e6:>9.0f} {in_tx:>6.1f} "
              f"{max(p.in_tx, default=0):>4} {max(p.lock_waits, default=0):>7} {p.errors:>6}")
    for p in (with_audit, without):
        total = sum(p.waits.values()) or 1
        top = ", ".join(f"{w} {100 * n / total:.0f}%" for w, n in p.waits.most_common(6))
        print(f"  in-transaction backends, {p.name}: {top}")
    ratio = with_audit.tps / without.tps
    print(f"\nthroughput with audit / without: {ratio:.2f}; p99 with / without: "
          f"{pct(with_audit.latencies, 0.99) / pct(without.latencies, 0.99):.2f}")
    print(f"scaling 1 -> {threads} threads: with audit {with_audit.tps / one_audit.tps:.2f}x, "
          f"without {without.tps / one_plain.tps:.2f}x")
    backlog = with_audit.backlog
    print(f"sealer: {sealer.calls} calls, {sealer.sealed:,} events sealed, call p50 "
          f"{pct(sealer.durations, 0.5) * 1e3:.0f} ms / max {max(sealer.durations) * 1e3:.0f} ms;"
          f" unsealed backlog during the audited phase: mean {statistics.fmean(backlog):.0f}, "
          f"max {max(backlog)}; errors {len(sealer.errors)}")
    print(f"after the run: final seal_pending sealed {final}, verify_chains ok={chain_ok} "
          f"({events:,} events, unsealed {sum(r.unsealed for r in reports)}); VIEW events of "
          f"the bench actor {views:,} for {audited_reads:,} audited reads")
    print("'in tx' = mean backends of the pool inside a transaction (pg_stat_activity, every "
          "100 ms); 'lock w.' = most backends seen waiting on a heavyweight lock at once; the "
          "wait shares are over all in-transaction backend samples (Client:ClientRead = the "
          "backend waits for this Python process); CPU = this process (readers, sealer and "
          "monitor threads).")
    box.close(seal=False)
    dbs.drop(url)
    return {"ratio": ratio, "chain_ok": chain_ok, "views_ok": views == audited_reads,
            "scale": with_audit.tps / one_audit.tps}


# ============================================================================ main
def machine(admin: str) -> None:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with psycopg.connect(_setup.libpq_url(admin)) as conn:
        server = conn.execute("SHOW server_version").fetchone()[0]
        sets = {k: conn.execute(f"SHOW {k}").fetchone()[0]
                for k in ("shared_buffers", "synchronous_commit", "max_connections")}
    load = os.getloadavg()
    print(f"python {platform.python_version()}, psycopg {psycopg.__version__} ({pq.__impl__}), "
          f"PostgreSQL {server} ({', '.join(f'{k}={v}' for k, v in sets.items())})")
    print(f"{os.cpu_count()} CPUs ({cpu}), {platform.platform()}; load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 20,000 events, 5 s phases, fewer creates")
    parser.add_argument("--events", type=int, default=None,
                        help="audit events for verify (default 1,000,000; --quick 20,000)")
    parser.add_argument("--url", default=_setup.DEFAULT_ADMIN_URL,
                        help="admin URL, only used to create and drop scratch databases")
    parser.add_argument("--only", default="create,verify,concurrent",
                        help="parts to run (comma-separated: create, verify, concurrent)")
    parser.add_argument("--ops", type=int, default=None, help="creates per side per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=None,
                        help="seconds per concurrency mode (default 15; --quick 5)")
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--patients", type=int, default=None,
                        help="patients of the concurrency clinic (default 10,000)")
    args = parser.parse_args(argv)
    args.events = args.events or (20_000 if args.quick else 1_000_000)
    args.ops = args.ops or (60 if args.quick else 300)
    args.rounds = 3 if args.quick and args.rounds == 5 else args.rounds
    args.seconds = args.seconds or (5.0 if args.quick else 15.0)
    args.patients = args.patients or (2_000 if args.quick else 10_000)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}

    exe = sys.executable
    if exe.startswith(str(Path.cwd())):
        exe = os.path.relpath(exe)
    print(f"$ {shlex.join([exe, sys.argv[0], *argv])}")
    print(f"neonpro audit benchmark - {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    machine(args.url)
    import neonpro

    print(f"neonpro imported from {Path(neonpro.__file__).parent}", flush=True)
    dbs = Scratch(args.url)
    t0 = time.perf_counter()
    summary: dict[str, dict[str, Any]] = {}
    def part(name: str, fn: Callable[[Scratch, argparse.Namespace], dict[str, Any]]) -> None:
        summary[name] = fn(dbs, args)
        load = os.getloadavg()
        print(f"(load average after {name}: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})",
              flush=True)

    try:
        if "create" in parts:
            part("create", bench_create)
        if "verify" in parts:
            part("verify", bench_verify)
        if "concurrent" in parts:
            part("concurrent", bench_concurrent)
    finally:
        dbs.drop_all()
    print("\n== goals ==")
    if "create" in summary:
        r = summary["create"]["full_plain"]
        print(f"create full/plain <= {GOAL_CREATE}: {r:.2f} "
              f"{'met' if r <= GOAL_CREATE else 'NOT met'}")
    if "verify" in summary:
        v = summary["verify"]
        print(f"verify >= {fmt_n(GOAL_VERIFY)} events/s: {fmt_n(v['rate'])} "
              f"{'met' if v['rate'] >= GOAL_VERIFY else 'NOT met'} (raw driver "
              f"{fmt_n(v['raw'])}, tamper checks {v['tamper_ok']}); sealing "
              f"{fmt_n(v['seal_rate'])} events/s (raw {fmt_n(v['raw_seal_rate'])})")
    if "concurrent" in summary:
        c = summary["concurrent"]
        print(f"concurrent audited reads: {c['ratio']:.2f} of the unaudited throughput, "
              f"{c['scale']:.2f}x the 1-thread throughput; chain verifies after the run: "
              f"{c['chain_ok']}; one VIEW event per audited read: {c['views_ok']}")
    print(f"scratch databases dropped; total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
