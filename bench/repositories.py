"""Repository benchmark: our unit of work + patient repository beside raw psycopg 3.

    .venv/bin/python bench/repositories.py              # 20 clinics, 200,000 patients
    .venv/bin/python bench/repositories.py --quick      # 20,000 patients
    .venv/bin/python bench/repositories.py --keep       # leave the scratch database
    .venv/bin/python bench/repositories.py --profile    # + pyinstrument of our get path
    .venv/bin/python bench/repositories.py --async-commit   # commits skip the WAL flush

A scratch database ``neonpro_bench_*`` is created on the server of ``--url`` (which is
only used to CREATE/DROP it), migrated, filled with COPY (see ``bench/_setup.py``) and
dropped at the end unless ``--keep``. The benchmark works in the largest clinic (a
quarter of the patients), so keyset page 1000 exists.

Each operation runs both ways in interleaved rounds (the order rotates and reverses from
round to round), so machine noise hits both alike; list page 1 and the deep page share
their rounds, so their ratio is not skewed either:

* ours: the service functions of ``neonpro.services.patients`` on
  ``Container.uow(clinic_id, actor)`` (SQLAlchemy pool, SET_CONTEXT, repository, audit
  event if the services record reads, commit); decrypts the 7 encrypted fields and
  builds a ``PatientRead`` per patient.
* raw: one psycopg 3 connection, ``BEGIN`` (implicit), the project's own ``SET_CONTEXT``
  statement (role ``neonpro_app``, ``app.clinic_id``, actor, ...), the same SQL
  statement, the same audit ``INSERT`` when ours records one (detected by tracing our
  protocol messages), ``COMMIT``. It decrypts nothing and builds no model, so the CPU
  ratio includes our mapping. Creates send rows built before timing (raw), while ours
  encrypts, computes blind indexes and validates inside the timed call.
* floor: a bare prepared ``SELECT`` by primary key on one autocommit connection (as the
  superuser, so no RLS), no transaction work: one round trip and nothing else.

Wall time is the median of per-call ``perf_counter`` samples; client CPU is
``time.process_time`` per call over all rounds (this process only; the server's CPU is
not counted). The sanity checks stop the run if both paths do not return the same rows.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

from neonpro.adapters.crypto import BlindIndexer, FieldCipher
from neonpro.adapters.db.database import SET_CONTEXT
from neonpro.adapters.db.repositories.patient import (
    BLIND,
    ENCRYPTED,
    NAME,
    READ_COLUMNS,
)
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.paging import FIRST_KEYSET_PAGE, PageRequest, query_scope
from neonpro.domain.schemas.patient import PatientCreate, PatientFilters, PatientSort, PatientUpdate
from neonpro.services import patients as svc

PAGE = 20
GOAL_RATIO = 1.5
GOAL_KEYSET = 1.2

# ----------------------------------------------------------------------------- raw SQL
# The statements our repository sends (same columns, predicates, order and limit),
# written out by hand as a raw psycopg user would.
COLS = ", ".join(c.name for c in READ_COLUMNS)
# the context statement is the project's own SET_CONTEXT text (it grows settings over
# time: audit request id, ip, ...), with psycopg placeholders
RAW_CONTEXT = re.sub(r"(?<!:):(\w+)", r"%(\1)s", SET_CONTEXT.text)
CONTEXT_NAMES = tuple(SET_CONTEXT._bindparams)
RAW_GET = f"SELECT {COLS} FROM patients WHERE clinic_id = %s AND id = %s AND deleted_at IS NULL"
RAW_BY_CPF = (
    f"SELECT {COLS} FROM patients "
    "WHERE clinic_id = %s AND cpf_blind_index = %s AND deleted_at IS NULL"
)
_LIST_WHERE = "clinic_id = %s AND deleted_at IS NULL AND is_active IS true"
RAW_LIST_FIRST = (
    f"SELECT {COLS} FROM patients WHERE {_LIST_WHERE} ORDER BY created_at, id LIMIT %s"
)
RAW_LIST_AFTER = (
    f"SELECT {COLS} FROM patients WHERE {_LIST_WHERE} AND (created_at, id) > (%s, %s) "
    "ORDER BY created_at, id LIMIT %s"
)
RAW_COUNT = f"SELECT count(*) FROM patients WHERE {_LIST_WHERE}"
# the columns our INSERT names for the create payload below (payload + Python-side defaults)
INSERT_COLUMNS = (
    "clinic_id", "id", "medical_record_number", "given_names", "family_name", "full_name",
    "birth_date", "gender", "nationality", "deceased_indicator",
    "cpf_encrypted", "cpf_blind_index", "cns_encrypted", "cns_blind_index", "external_ids",
    "phone_primary", "email", "language_preference", "city", "state", "postal_code", "country",
    "allergies", "chronic_conditions", "current_medications", "accessibility_needs",
    "patient_notes_encrypted", "data_consent_status", "total_no_shows", "total_appointments",
    "is_active", "created_by", "updated_by", "version",
)
RAW_INSERT = (
    f"INSERT INTO patients ({', '.join(INSERT_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(INSERT_COLUMNS))}) RETURNING {COLS}"
)
RAW_UPDATE = (
    "UPDATE patients SET phone_primary = %s, updated_by = %s, version = version + 1 "
    "WHERE clinic_id = %s AND id = %s AND deleted_at IS NULL AND version = %s "
    f"RETURNING {COLS}"
)
FLOOR_GET = f"SELECT {COLS} FROM patients WHERE clinic_id = %s AND id = %s"
VERSION_AT = [c.name for c in READ_COLUMNS].index("version")
# Audited reads: when the service functions record a VIEW event in the read's transaction,
# raw sends the same INSERT (the project's statement text, psycopg placeholders).
try:
    from neonpro.adapters.db.repositories.audit import INSERT as _AUDIT_INSERT
    # a hot statement (adapters/db/hot.py) wraps the SQLAlchemy construct
    _AUDIT_INSERT = getattr(_AUDIT_INSERT, "statement", _AUDIT_INSERT)
except ImportError:  # a version without audited reads
    _AUDIT_INSERT = None
RAW_AUDIT = (re.sub(r"(?<!:):(\w+)", r"%(\1)s", _AUDIT_INSERT.text)
             if _AUDIT_INSERT is not None else None)
AUDIT_NAMES = tuple(_AUDIT_INSERT._bindparams) if _AUDIT_INSERT is not None else ()


def check(condition: object, what: str) -> None:
    """Stop the benchmark when the two paths disagree (a benchmark of wrong work is void)."""
    if not condition:
        raise RuntimeError(f"sanity check failed: {what}")


# ----------------------------------------------------------------------------- timing
Op = Callable[[int], Any]  # one call of an operation, given its call index


@dataclass
class Side:
    samples: list[int]  # wall ns per call
    cpu_s: float = 0.0
    calls: int = 0

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples) / 1000

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.calls * 1e6


def _batch(fn: Callable[[int], object], start: int, n: int, side: Side) -> None:
    gc.collect()
    append = side.samples.append
    clock = time.perf_counter_ns
    cpu0 = time.process_time()
    for i in range(start, start + n):
        t0 = clock()
        fn(i)
        append(clock() - t0)
    side.cpu_s += time.process_time() - cpu0
    side.calls += n


def compare(fns: list[Callable[[int], object]], n: int, rounds: int, warmup: int) -> list[Side]:
    """Warm every function up, then ``rounds`` rounds of n calls of each, interleaved.

    The order rotates from round to round (and reverses every other round), so a burst
    of machine noise lands on every function alike. ``fn(i)`` gets a call index unique
    per function (creates and updates use it to pick an unused CPF or patient);
    warm-up calls use the first indexes.
    """
    sides = [Side([]) for _ in fns]
    scratch = Side([])
    for fn in fns:
        _batch(fn, 0, warmup, scratch)
    k = len(fns)
    for r in range(rounds):
        order = [(r + j) % k for j in range(k)]
        if r % 2:
            order.reverse()
        for j in order:
            _batch(fns[j], warmup + r * n, n, sides[j])
    return sides


# ------------------------------------------------------------------------- round trips
def traced(pgconn: pq.abc.PGconn, work: Callable[[], object]) -> list[str]:
    """The protocol messages the client sent during ``work``, one word per sync point."""
    with tempfile.TemporaryFile("w+") as log:
        pgconn.trace(log.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            work()
        finally:
            pgconn.untrace()
        log.seek(0)
        lines = log.read().splitlines()
    out: list[str] = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        direction, message, rest = parts[0], parts[2], "\t".join(parts[3:])
        if direction == "F" and message == "Query":
            sql = rest.strip().strip('"').strip()
            out.append("ping(;)" if sql in ("", ";") else sql.split()[0])
        elif direction == "F" and message == "Parse":
            # Parse "<name>" "<sql>" ...: the SQL may span lines, so its closing quote may
            # be on a later line
            quoted = rest.split('"')
            sql = quoted[3] if len(quoted) > 3 else "?"
            out.append(sql.split()[0] if sql.split() else "?")
        elif direction == "F" and message == "Bind":
            # a Bind right after its Parse is the same statement; alone it runs a
            # statement prepared earlier
            if not out or out[-1] not in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "?"):
                out.append("EXECUTE")
        elif direction == "B" and message == "ReadyForQuery":
            out.append("|")
    return out


def round_trips(messages: list[str]) -> tuple[int, str]:
    groups, current = [], []
    for m in messages:
        if m == "|":
            groups.append("+".join(current) or "?")
            current = []
        else:
            current.append(m)
    return len(groups), ", ".join(groups)


# ------------------------------------------------------------------------------ plans
def explain(conn: psycopg.Connection, sql: str, params: tuple, *, app_clinic: uuid.UUID | None,
            generic: bool = False) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) under the application role (or as the superuser)."""
    with conn.transaction(force_rollback=True), psycopg.ClientCursor(conn) as cur:
        if app_clinic is not None:
            cur.execute("SET LOCAL ROLE neonpro_app")
            cur.execute("SELECT set_config('app.clinic_id', %s, true)", (str(app_clinic),))
        if generic:
            cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            typed = sql
            for n in range(1, len(params) + 1):
                typed = typed.replace("%s", f"${n}", 1)
            cur.execute(f"PREPARE bench_plan AS {typed}")
            args = ", ".join(cur.mogrify("%s", (p,)) for p in params)
            cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_plan({args})")
        else:
            cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        plan = "\n".join(r[0] for r in cur.fetchall())
        if generic:
            cur.execute("DEALLOCATE bench_plan")
    return plan


def plan_summary(plan: str) -> tuple[str, str, int]:
    """(access path, execution time, rows the scans read and then filtered away)."""
    access = []
    removed = 0
    for line in plan.splitlines():
        s = line.strip().lstrip("->").strip()
        for kind in ("Index Only Scan", "Index Scan", "Bitmap Index Scan", "Seq Scan"):
            if s.startswith(kind):
                head = s.split("  (")[0]
                access.append(head)
                break
        if s.startswith("Rows Removed by Filter:"):
            removed += int(s.split(":")[1])
    exec_ms = next((line.split(":")[1].strip() for line in plan.splitlines()
                    if line.startswith("Execution Time")), "?")
    return "; ".join(access) or "?", exec_ms, removed


def scan_estimate(plan: str) -> str:
    """The planner's row estimate beside the actual rows, for the scan that filters."""
    for line in plan.splitlines():
        if "Scan" in line and "(actual" in line and "Bitmap Index" not in line:
            estimated = line.split("(cost=")[1].split("rows=")[1].split()[0]
            actual = line.split("(actual")[1].split("rows=")[1].split()[0]
            return (f"the scan: planner estimated {int(estimated):,} rows, "
                    f"produced {int(actual):,}")
    return ""


# ------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--clinics", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="20,000 patients, fewer calls")
    parser.add_argument("--url", default=_setup.DEFAULT_ADMIN_URL,
                        help="admin URL, only used to create and drop the scratch database")
    parser.add_argument("--keep", action="store_true", help="do not drop the scratch database")
    parser.add_argument("--ops", type=int, default=None,
                        help="calls per side per round for point operations (default 75)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--async-commit", action="store_true",
                        help="synchronous_commit=off on the scratch database: commits do not "
                             "wait for the WAL flush, so wall times show client and round-trip "
                             "cost rather than the disk")
    parser.add_argument("--profile", action="store_true",
                        help="also profile our get-by-id loop (pyinstrument if installed)")
    parser.add_argument("--no-plans", action="store_true", help="skip the EXPLAIN section")
    parser.add_argument("--only", default="",
                        help="comma-separated operation names to measure (e.g. get,cpf,list)")
    args = parser.parse_args(argv)
    if args.quick:
        args.patients = min(args.patients, 20_000)
    ops = args.ops or (25 if args.quick else 75)
    list_ops = max(ops // 3, 10)
    total_ops = max(ops // 30, 3)  # a count(*) over the clinic per call: slow
    rounds, warmup = args.rounds, 30

    print(f"neonpro repository benchmark - {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"python {platform.python_version()}, psycopg {psycopg.__version__} "
          f"({pq.__impl__}), {os.cpu_count()} CPUs, {platform.platform()}")
    import neonpro

    print(f"neonpro imported from {Path(neonpro.__file__).parent}")
    print(f"loading {args.patients:,} patients in {args.clinics} clinics ...", flush=True)
    ds = _setup.load(args.url, args.patients, args.clinics)
    print(f"loaded in {ds.load_seconds:.0f} s: {ds.url.rsplit('/', 1)[1]}")
    with psycopg.connect(ds.url, autocommit=True) as conn:
        name = ds.url.rsplit("/", 1)[1]
        if args.async_commit:
            conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        mode = "off (--async-commit)" if args.async_commit else "server default"
        print(f"synchronous_commit: {mode}; "
              f"fsync={conn.execute('SHOW fsync').fetchone()[0]}, "
              f"shared_buffers={conn.execute('SHOW shared_buffers').fetchone()[0]}")
    try:
        run(ds, args, ops, list_ops, total_ops, rounds, warmup)
    finally:
        if args.keep:
            print(f"kept {ds.url}")
        else:
            _setup.drop_scratch_database(args.url, ds.url)
            print("scratch database dropped")
    return 0


def run(ds: _setup.Dataset, args: argparse.Namespace, ops: int, list_ops: int,
        total_ops: int, rounds: int, warmup: int) -> None:
    url = ds.url
    clinic = ds.bench_clinic
    cipher, blind = FieldCipher(ds.keyring), BlindIndexer(ds.keyring)
    container = Container(_setup.make_settings(url), database_url=url, keyring=ds.keyring)
    actor = Actor(uuid.uuid4(), "admin")
    known = {"role": "neonpro_app", "clinic_id": str(clinic), "actor_id": str(actor.id),
             "actor_role": actor.role}
    context = {name: known.get(name, "") for name in CONTEXT_NAMES}
    audited = {"reads": False}  # set below if our service functions audit reads

    def raw_audit(rtype: str, rid: str | None, details: dict[str, object]) -> None:
        if not audited["reads"]:
            return
        values = {
            "clinic": clinic, "actor": actor.id, "role": actor.role, "action": "VIEW",
            "rtype": rtype, "rid": rid, "patient": rid if rtype == "patient" else None,
            "status": "success", "risk": "low", "ip": None, "ua": None, "session": None,
            "request": None, "details": json.dumps(details),
        }
        cur.execute(RAW_AUDIT, {name: values[name] for name in AUDIT_NAMES})
    opts = {"application_name": "neonpro-bench-raw",
            "options": "-c statement_timeout=60000 -c TimeZone=UTC"}
    raw = psycopg.connect(url, **opts)
    floor = psycopg.connect(url, autocommit=True, **opts)
    cur = raw.cursor()

    visible = ds.bench_patients  # (id, n) of visible, active patients of the bench clinic
    size = ds.clinic_sizes[0]
    print(f"bench clinic: {size:,} patients ({len(visible):,} active and not deleted); "
          f"{rounds} rounds x {ops} calls per side (lists: {list_ops})")

    # ---- inputs -------------------------------------------------------------------
    reads = visible[: 2000]
    n_reads = len(reads)
    per_side = warmup + rounds * ops
    # creates: fresh CPF/CNS numbers; ours gets validated inputs, raw prebuilt rows
    first_n = ds.next_n
    creates_ours = []
    creates_raw = []
    for i in range(per_side):
        n_ours, n_raw = first_n + 2 * i, first_n + 2 * i + 1
        creates_ours.append(_create_input(n_ours))
        creates_raw.append(_raw_insert_row(_create_input(n_raw), clinic, actor.id, cipher, blind))
    # updates: distinct patients (version 1) per call, disjoint between the sides
    # updates: each side has its own half of the patients not used for reads, cycled; the
    # version each call must name is tracked (from what the previous update returned)
    update_pool = [pid for pid, _ in visible[n_reads:]] or [pid for pid, _ in visible]
    half = max(len(update_pool) // 2, 1)
    pool_ours, pool_raw = update_pool[:half], update_pool[half:] or update_pool[:half]
    versions: dict[uuid.UUID, int] = {}

    # keyset cursors: page 1 and the deep page (page 1000, rows 19,981-20,000)
    deep = min(1000, len(visible) // PAGE)
    with psycopg.connect(url) as service:
        service.execute("SET ROLE neonpro_service")
        created, last_id = service.execute(
            f"SELECT created_at, id FROM patients WHERE {_LIST_WHERE} "
            "ORDER BY created_at, id OFFSET %s LIMIT 1",
            (clinic, (deep - 1) * PAGE - 1),
        ).fetchone()
    # the cursor the API would have sealed for this clinic and the default listing
    sort = PatientSort()
    deep_cursor = blind.cursors.seal([created.isoformat(), str(last_id)], query_scope(
        "patients", clinic, PatientFilters(), sort.field, sort.direction))

    # ---- operations ---------------------------------------------------------------
    def uow() -> Any:
        return container.uow(clinic, actor)

    def ours_get(i: int) -> Any:
        return svc.get_patient(uow(), reads[i % n_reads][0])

    def raw_get(i: int) -> Any:
        cur.execute(RAW_CONTEXT, context)
        pid = reads[i % n_reads][0]
        cur.execute(RAW_GET, (clinic, pid))
        row = cur.fetchone()
        raw_audit("patient", str(pid), {})
        raw.commit()
        return row

    def floor_get(i: int) -> Any:
        return floor.execute(FLOOR_GET, (clinic, reads[i % n_reads][0]), prepare=True).fetchone()

    cpfs = [_setup.cpf(n) for _, n in reads]

    def ours_cpf(i: int) -> Any:
        found = svc.find_patient_by_cpf(uow(), cpfs[i % n_reads])
        check(found is not None, "CPF lookup found nobody")
        return found

    def raw_cpf(i: int) -> Any:
        bi = blind.index("cpf", cpfs[i % n_reads])
        cur.execute(RAW_CONTEXT, context)
        cur.execute(RAW_BY_CPF, (clinic, bi))
        row = cur.fetchone()
        raw_audit("patient", str(row[0]), {"lookup": "cpf", "found": True})
        raw.commit()
        return row

    first_page = PageRequest(limit=PAGE, cursor=FIRST_KEYSET_PAGE, with_total=False)
    first_page_total = PageRequest(limit=PAGE, cursor=FIRST_KEYSET_PAGE, with_total=True)
    deep_page = PageRequest(limit=PAGE, cursor=deep_cursor, with_total=False)

    def ours_list1(_i: int) -> Any:
        return svc.search_patients(uow(), None, None, first_page)

    def raw_list1(_i: int) -> Any:
        cur.execute(RAW_CONTEXT, context)
        cur.execute(RAW_LIST_FIRST, (clinic, PAGE + 1))
        rows = cur.fetchall()
        raw_audit("patients", None, {"returned": PAGE, "filters": []})
        raw.commit()
        return rows

    def ours_list1_total(_i: int) -> Any:
        return svc.search_patients(uow(), None, None, first_page_total)

    def raw_list1_total(_i: int) -> Any:
        cur.execute(RAW_CONTEXT, context)
        cur.execute(RAW_LIST_FIRST, (clinic, PAGE + 1))
        rows = cur.fetchall()
        cur.execute(RAW_COUNT, (clinic,))
        total = cur.fetchone()
        raw_audit("patients", None, {"returned": PAGE, "filters": []})
        raw.commit()
        return rows, total

    def ours_deep(_i: int) -> Any:
        return svc.search_patients(uow(), None, None, deep_page)

    def raw_deep(_i: int) -> Any:
        cur.execute(RAW_CONTEXT, context)
        cur.execute(RAW_LIST_AFTER, (clinic, created, last_id, PAGE + 1))
        rows = cur.fetchall()
        raw_audit("patients", None, {"returned": PAGE, "filters": []})
        raw.commit()
        return rows

    def ours_create(i: int) -> Any:
        return svc.register_patient(uow(), creates_ours[i])

    def raw_create(i: int) -> Any:
        cur.execute(RAW_CONTEXT, context)
        cur.execute(RAW_INSERT, creates_raw[i])
        row = cur.fetchone()
        raw.commit()
        return row

    def ours_update(i: int) -> Any:
        pid = pool_ours[i % len(pool_ours)]
        change = PatientUpdate(phone_primary=f"1198{i:07d}", version=versions.get(pid, 1))
        patient = svc.update_patient(uow(), pid, change)
        versions[pid] = patient.version
        return patient

    def raw_update(i: int) -> Any:
        pid = pool_raw[i % len(pool_raw)]
        cur.execute(RAW_CONTEXT, context)
        cur.execute(RAW_UPDATE, (f"1197{i:07d}", actor.id, clinic, pid, versions.get(pid, 1)))
        row = cur.fetchone()
        if row is None:
            raw.rollback()
            raise RuntimeError("stale version")
        raw.commit()
        versions[pid] = row[VERSION_AT]
        return row

    # ---- sanity: both paths return the same rows ------------------------------------
    page1 = svc.search_patients(uow(), None, None, first_page)
    check([p.id for p in page1.items] == [r[0] for r in raw_list1(0)[:PAGE]], "page 1 differs")
    deep_items = svc.search_patients(uow(), None, None, deep_page).items
    check(len(deep_items) == PAGE, f"page {deep} is not full")
    check([p.id for p in deep_items] == [r[0] for r in raw_deep(0)[:PAGE]],
          f"page {deep} differs")
    check(ours_get(0).id == raw_get(0)[0] == floor_get(0)[0], "get by id differs")
    check(ours_cpf(0).id == raw_cpf(0)[0], "CPF lookup differs")

    # ---- round trips per transaction ----------------------------------------------
    engine = container.database.engine("app")
    with engine.connect() as c:
        ours_pgconn = c.connection.driver_connection.pgconn  # type: ignore[union-attr,attr-defined]
    pool = engine.pool
    print(f"pool: {pool.checkedin()} connection(s) idle (ours reuses one connection)")  # type: ignore[attr-defined]
    trips = {"ours get": round_trips(traced(ours_pgconn, lambda: ours_get(1)))}
    if RAW_AUDIT is not None and "INSERT" in trips["ours get"][1]:
        audited["reads"] = True  # ours records a VIEW event per read: raw does the same
    trips["raw get"] = round_trips(traced(raw.pgconn, lambda: raw_get(1)))
    trips["floor get"] = round_trips(traced(floor.pgconn, lambda: floor_get(1)))
    print("\nround trips per call (client/server sync points, statements sent):")
    for name, (count, what) in trips.items():
        print(f"  {name:<10} {count}: {what}")
    if audited["reads"]:
        print("  reads are audited (an audit_events INSERT per get, CPF lookup and list page):"
              " raw sends the same INSERT")

    # ---- measurements ---------------------------------------------------------------
    print("\nmeasuring ...", flush=True)
    t0 = time.perf_counter()
    selected = [w.strip() for w in args.only.split(",") if w.strip()]
    groups: list[tuple[int, list[tuple[str, Op, Op | None]]]] = [
        (ops, [("floor: prepared SELECT by PK", floor_get, None),
               ("get by id", ours_get, raw_get)]),
        (ops, [("find by CPF", ours_cpf, raw_cpf)]),
        # both pages in the same rounds: their ratio is not skewed by noise between them
        (list_ops, [("list page 1 (keyset, 20)", ours_list1, raw_list1),
                    (f"list page {deep} (keyset, 20)", ours_deep, raw_deep)]),
        (total_ops, [("list page 1 + total", ours_list1_total, raw_list1_total)]),
        (ops, [("create patient", ours_create, raw_create)]),
        (ops, [("update patient (version)", ours_update, raw_update)]),
    ]
    results: list[tuple[str, Side, Side | None]] = []
    for n, group in groups:
        entries = [e for e in group
                   if not selected or e[2] is None or any(w in e[0] for w in selected)]
        if all(e[2] is None for e in entries):
            continue
        fns = [f for _, o, r in entries for f in ((o, r) if r else (o,))]
        sides = iter(compare(fns, n, rounds, min(warmup, n)))
        for name, _, r in entries:
            mine = next(sides)
            results.append((name, mine, next(sides) if r else None))
            print(f"  {name}: done ({time.perf_counter() - t0:.0f} s)", flush=True)

    # ---- table ------------------------------------------------------------------------
    print()
    head = (f"{'operation':<30} {'ours µs':>9} {'raw µs':>9} {'ratio':>6} "
            f"{'ours CPU':>9} {'raw CPU':>9} {'ratio':>6}  goal <= {GOAL_RATIO}")
    print(head)
    print("-" * len(head))
    by_name = {}
    for name, mine, theirs in results:
        by_name[name] = (mine, theirs)
        if theirs is None:
            print(f"{name:<30} {mine.median_us:>9.0f} {'':>9} {'':>6} {mine.cpu_us:>9.0f}")
            continue
        ratio = mine.median_us / theirs.median_us
        cpu_ratio = mine.cpu_us / theirs.cpu_us
        verdict = "met" if ratio <= GOAL_RATIO else "NOT met"
        print(f"{name:<30} {mine.median_us:>9.0f} {theirs.median_us:>9.0f} {ratio:>6.2f} "
              f"{mine.cpu_us:>9.0f} {theirs.cpu_us:>9.0f} {cpu_ratio:>6.2f}  {verdict}")
    first, deepest = "list page 1 (keyset, 20)", f"list page {deep} (keyset, 20)"
    if first in by_name and deepest in by_name:
        (o1, r1), (od, rd) = by_name[first], by_name[deepest]
        keyset = od.median_us / o1.median_us
        raw_keyset = rd.median_us / r1.median_us if rd and r1 else float("nan")
        print(f"\nkeyset page {deep} / page 1 (ours): {keyset:.2f} (raw: {raw_keyset:.2f}); "
              f"goal <= {GOAL_KEYSET}: {'met' if keyset <= GOAL_KEYSET else 'NOT met'}")
    print("wall = median µs per call; CPU = client process CPU µs per call. Ours decrypts "
          "7 fields per patient and builds a pydantic PatientRead (20 per list page); raw "
          "decrypts nothing, so the CPU ratio includes our mapping. 'list page 1 + total' "
          "is the default PageRequest(with_total=True): a count(*) over the clinic per page.")
    print(f"measurement took {time.perf_counter() - t0:.0f} s; "
          f"load average now {os.getloadavg()[0]:.1f} (1 min), {os.getloadavg()[1]:.1f} (5 min)")

    # ---- plans ----------------------------------------------------------------------
    if not args.no_plans:
        plans(floor, clinic, blind, cpfs[0], (created, last_id), deep)

    if args.profile:
        profile(ours_get, n_reads)

    cur.close()
    raw.close()
    floor.close()
    container.close()


def _create_input(n: int) -> PatientCreate:
    return PatientCreate(
        full_name=f"Paciente Bench {n} da Silva", given_names=["Paciente", "Bench"],
        family_name="da Silva", birth_date=date(1985, 5, 17), gender="female",
        cpf=_setup.cpf(n), cns=_setup.cns(n), phone_primary="11987654321",
        email=f"bench{n}@example.com.br", city="São Paulo", state="SP",
        postal_code="01310100", patient_notes="Primeira consulta: avaliação facial.",
    )


def _raw_insert_row(data: PatientCreate, clinic: uuid.UUID, actor: uuid.UUID,
                    cipher: FieldCipher, blind: BlindIndexer) -> tuple[object, ...]:
    from psycopg.types.json import Jsonb

    pid = uuid.uuid4()

    def enc(name: str, value: str) -> bytes:
        return cipher.encrypt(value, table=NAME, column=ENCRYPTED[name], row_id=pid)

    check(data.cpf is not None, "create input has a CPF")
    check(data.cns is not None, "create input has a CNS")
    check(data.patient_notes is not None, "create input has notes")
    values = {
        "clinic_id": clinic, "id": pid, "medical_record_number": "P-" + pid.hex[:12].upper(),
        "given_names": data.given_names, "family_name": data.family_name,
        "full_name": data.full_name, "birth_date": data.birth_date, "gender": data.gender,
        "nationality": "brasileira", "deceased_indicator": False,
        "cpf_encrypted": enc("cpf", data.cpf), "cpf_blind_index": blind.index("cpf", data.cpf),
        "cns_encrypted": enc("cns", data.cns), "cns_blind_index": blind.index("cns", data.cns),
        "external_ids": Jsonb({}), "phone_primary": data.phone_primary, "email": data.email,
        "language_preference": "pt-BR", "city": data.city, "state": data.state,
        "postal_code": data.postal_code, "country": "BR", "allergies": [],
        "chronic_conditions": [], "current_medications": [], "accessibility_needs": [],
        "patient_notes_encrypted": enc("patient_notes", data.patient_notes),
        "data_consent_status": "pending", "total_no_shows": 0, "total_appointments": 0,
        "is_active": True, "created_by": actor, "updated_by": actor, "version": 1,
    }
    check(set(BLIND) == {"cpf", "cns"}, "blind-indexed fields are CPF and CNS")
    return tuple(values[c] for c in INSERT_COLUMNS)


def plans(conn: psycopg.Connection, clinic: uuid.UUID, blind: BlindIndexer, cpf: str,
          deep_key: tuple[datetime, uuid.UUID], deep: int) -> None:
    created, last_id = deep_key
    bi = blind.index("cpf", cpf)
    list_where = "clinic_id = %s AND deleted_at IS NULL AND is_active IS true"
    name_sql = (f"SELECT {COLS} FROM patients WHERE {list_where} "
                "AND search_name LIKE %s ESCAPE '\\' ORDER BY created_at, id LIMIT 21")
    rare_sql = (f"SELECT {COLS} FROM patients WHERE {list_where} "
                "AND search_name LIKE %s ESCAPE '\\' ORDER BY created_at, id LIMIT 21")
    cases = [
        ("get by id", RAW_GET, (clinic, last_id)),
        ("find by CPF", RAW_BY_CPF, (clinic, bi)),
        ("list page 1 by created_at", RAW_LIST_FIRST, (clinic, 21)),
        (f"keyset page {deep}", RAW_LIST_AFTER, (clinic, created, last_id, 21)),
        ("name search '%silva%'", name_sql, (clinic, "%silva%")),
        ("name search, no match", rare_sql, (clinic, "%zzqx%")),
    ]
    print("\nplans: EXPLAIN (ANALYZE, BUFFERS) as neonpro_app in the bench clinic "
          "(custom plan; generic = force_generic_plan, what a prepared statement may use)")
    for name, sql, params in cases:
        plan = explain(conn, sql, params, app_clinic=clinic)
        access, ms, removed = plan_summary(plan)
        gaccess, gms, _ = plan_summary(
            explain(conn, sql, params, app_clinic=clinic, generic=True))
        index = "index" if "Index" in access and "Seq Scan" not in access else "NO INDEX"
        print(f"  {name:<28} {index:<8} {ms:>10}  {access}; filtered out {removed:,} rows")
        if gaccess != access:
            print(f"  {'  generic plan':<28} {'':<8} {gms:>10}  {gaccess}")
        if name.startswith("name search '"):
            print(f"  {'':<38}{scan_estimate(plan)}")
    # the same name search as the superuser (no RLS), and with a trigram index (rolled back)
    sup = explain(conn, name_sql, (clinic, "%silva%"), app_clinic=None)
    access, ms, removed = plan_summary(sup)
    print(f"  {'name search, superuser':<28} {'':<8} {ms:>10}  {access}; "
          f"filtered out {removed:,} rows")
    print(f"  {'':<38}{scan_estimate(sup)}")
    trgm_sql = f"SELECT {COLS} FROM patients WHERE clinic_id = %s AND search_name LIKE %s"
    with conn.transaction(force_rollback=True), psycopg.ClientCursor(conn) as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        cur.execute("CREATE INDEX bench_trgm ON patients USING gin (search_name gin_trgm_ops)")
        cur.execute("ANALYZE patients")
        out = {}
        for who in ("superuser", "neonpro_app"):
            cur.execute("SAVEPOINT s")
            if who == "neonpro_app":
                cur.execute("SET LOCAL ROLE neonpro_app")
                cur.execute("SELECT set_config('app.clinic_id', %s, true)", (str(clinic),))
            cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {trgm_sql}", (clinic, "%zzqx%"))
            out[who] = "\n".join(r[0] for r in cur.fetchall())
            cur.execute("ROLLBACK TO SAVEPOINT s")
    print("  with a trigram GIN index on search_name (created in a rolled-back transaction),")
    print("  search_name LIKE '%zzqx%' in one clinic:")
    for who, plan in out.items():
        access, ms, _ = plan_summary(plan)
        print(f"    {who:<26} {'':<8} {ms:>10}  {access}")


def profile(ours_get: Callable[[int], object], n: int) -> None:
    calls = 2000
    try:
        from pyinstrument import Profiler
    except ImportError:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        for i in range(calls):
            ours_get(i % n)
        prof.disable()
        print(f"\ncProfile of {calls} get-by-id calls (ours), top 25 by cumulative time:")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        return
    profiler = Profiler(interval=0.0001)
    profiler.start()
    for i in range(calls):
        ours_get(i % n)
    profiler.stop()
    print(f"\npyinstrument, {calls} get-by-id calls (ours):")
    print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    raise SystemExit(main())
