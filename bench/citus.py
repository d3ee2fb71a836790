"""Plain PostgreSQL beside a local Citus cluster, in one run (issue 19, item 7).

    .venv/bin/python bench/citus.py            # 20 clinics, 20,000 patients, 2.5-5 min
    .venv/bin/python bench/citus.py --quick    # 5 clinics, 2,000 patients, a smoke run

ONE MACHINE: the coordinator and both workers share this machine's cores with the
PostgreSQL server of the plain side and with this client, so the figures show what Citus
costs per operation (the extra hop coordinator -> worker, its planning, two-phase commit),
never what more machines would give.

Setup, the same on both sides:

* plain: a scratch database ``neonpro_bench_*`` on the server of ``--url`` (only used to
  CREATE and DROP it);
* Citus: a cluster of its own (``neonpro.devtools.citus``: a coordinator and 2 workers on
  free private ports, ``citus.shard_count = 8``), stopped and removed at the end, also on
  error; ``citus.enable_stat_counters`` on for its database;
* both migrated by the project's migrations (on Citus revision 0017 distributes the schema)
  and filled by ``bench/_setup.py`` with the same seed and the same keys: the same clinics,
  the same patients, byte for byte (COPY as the service login); one professional per
  booking lane in the benchmark clinic (the largest), one retention policy per clinic.

Tenant operations, in the benchmark clinic, each side measured in interleaved rounds (the
order rotates every round, so machine noise hits all four alike):

* ours: the service functions on ``Container.uow(clinic, actor)`` (the application login,
  row-level security, ``neonpro_bind_context``, the audit event of a read, the commit
  token, written by ``Container.uow`` for reads too, decryption and the response models);
* raw: one psycopg connection as the same application login (row-level security on, not
  the owner), the same statements: the project's context statement, the repository's
  SELECT and audit INSERT (bench/repositories.py), its patient INSERT with rows encrypted
  before timing, the commit token, and a booking as bench/baseline_app.py sends it (clinic time zone,
  professional locked, the day's blocking slots, the rules, the INSERT with the score join
  and the commit token, in the form neonpro sends them since revision 0017).

Router share (Citus only): ``citus_stat_counters`` (Citus 13.1+, ``query_execution_single_shard``
and ``query_execution_multi_shard`` of the coordinator) read before and after a pass of each
operation; then the proof: with ``citus.multi_task_query_log_level = 'error'`` set on the
application login, a multi-shard query raises, and the tenant operations are run again on
fresh connections, ours and raw.

Going to more machines, rehearsed on the Citus side at the end (``--no-operator-steps``
skips it): a third worker node started like the others and added (``citus_add_node``), the
shards rebalanced (``citus_rebalance_start(shard_transfer_mode => 'block_writes')``: the
default mode moves shards by logical replication, which needs ``wal_level = logical`` on
every node; without it the rebalance job retries for ever), the benchmark clinic isolated on
shards of its own (``isolate_tenant_to_new_shard(..., 'CASCADE', shard_transfer_mode =>
'block_writes')``: it too splits by logical replication otherwise) and a restore point taken
on every node (``citus_create_restore_point``); each timed, the tenant operations run after
each step.

Cross-clinic service operations (the service login, every clinic; no-show scoring is the
``neonpro noshow score`` job, one tenant transaction per clinic): the median of 3-5 calls
per side (the audit seal once: it seals what the runs wrote), with the coordinator's single-
and multi-shard query counts per call, and the statements it logged as multi-shard
(``citus.multi_task_query_log_level = 'log'`` on the Citus database).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup
import api  # bench/api.py: booking lanes, free ports
import baseline_app as base  # bench/baseline_app.py: the booking's statements
import repositories as rep  # bench/repositories.py: the patient statements, the timing

from neonpro.adapters.crypto import BlindIndexer, FieldCipher, KeyRing
from neonpro.adapters.db.durability_sql import PRE_COMMIT
from neonpro.adapters.db.logins import login_url
from neonpro.bootstrap import Container
from neonpro.devtools import citus
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.paging import FIRST_KEYSET_PAGE, PageRequest
from neonpro.domain.schemas.appointment import AppointmentCreate
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.services import audit, catalog, clinics, consents, noshow, retention, scheduling
from neonpro.services import patients as psvc

HEADLINE = ("one machine: coordinator + 2 workers on the same {cores} cores; figures show "
            "Citus's overhead, not its scale")
SIDES = ("plain", "citus")
PAGE = 20
ZONE = ZoneInfo("America/Sao_Paulo")
# the booking as neonpro sends it since revision 0017: the score joined from the scores of
# the statement's clinic, named by value (bench/baseline_app.py still has the former join,
# which crashed a Citus 13.2.2 coordinator), and the commit token a plain VALUES insert
RAW_BOOK = base.INSERT_APPOINTMENT.replace(
    "LEFT OUTER JOIN appointment_risk_scores ON",
    "LEFT OUTER JOIN (SELECT * FROM appointment_risk_scores "
    "WHERE clinic_id = %(clinic_id)s::UUID) AS appointment_risk_scores ON")
RAW_TOKEN = PRE_COMMIT.text.replace(":clinic", "%(clinic)s").replace(":token", "%(token)s")
COUNTERS = ("SELECT query_execution_single_shard, query_execution_multi_shard "
            "FROM citus_stat_counters WHERE name = current_database()")


def make_keyring() -> KeyRing:
    """Fresh keys, an audit key among them (the chains are sealed and verified)."""
    return KeyRing(keys={"k1": os.urandom(32)}, active_id="k1", blind_index_key=os.urandom(32),
                   audit_key=os.urandom(32))


# ---------------------------------------------------------------------------- the sides
@dataclass
class Side:
    """One database (plain or Citus) with its container, raw connection and inputs."""

    name: str
    url: str
    ds: _setup.Dataset
    box: Container
    raw: psycopg.Connection[Any]
    lanes: api.Lanes
    reads: list[uuid.UUID]
    ops: dict[str, tuple[rep.Op, rep.Op]] = field(default_factory=dict)
    log: Path | None = None  # the coordinator's server log (Citus)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.raw.close()
        with contextlib.suppress(Exception):
            self.box.close()


def start_cluster() -> citus.LocalCluster:
    """A cluster of the run's own: its own directory and free ports (like the tests)."""
    citus.requirements()
    home = Path(tempfile.mkdtemp(prefix="neonpro-bench-citus-", dir="/tmp"))
    home.chmod(0o755)
    port = api.free_port()
    while not all(citus.port_free(port + i) for i in range(3)):
        port = api.free_port()
    cluster = citus.up(home / "cluster", port, workers=2, shard_count=8)
    # the devtools nodes run with fsync = off; the plain server flushes: so do they here,
    # or every commit would compare a flushed WAL with an unflushed one
    for node in cluster.ports:
        with psycopg.connect(cluster.url(node, "postgres"), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = on")
            conn.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    for node in cluster.ports:
        with psycopg.connect(cluster.url(node, "postgres"), autocommit=True) as conn:
            rep.check(conn.execute("SHOW fsync").fetchone() == ("on",), f"fsync on {node}")
    return cluster


def seed_side(name: str, url: str, args: argparse.Namespace, keyring: KeyRing,
              lanes: int) -> Side:
    """Migrate and fill ``url``, add the booking professionals and a retention policy per
    clinic, and open our container and the raw connection (both as the application)."""
    t0 = time.perf_counter()
    ds = _setup.fill(url, args.patients, args.clinics, keyring=keyring, log=False)
    box = Container(_setup.make_settings(url), database_url=url, keyring=keyring)
    admin = Actor(uuid.UUID(int=0xADA), "admin")
    hours = {"work_start_time": dtime(0, 0), "work_end_time": dtime(23, 59),
             "can_work_weekends": True, "appointment_buffer_minutes": 0,
             "max_daily_appointments": 200}
    professionals = [catalog.add_professional(box.uow(ds.bench_clinic, admin), ProfessionalCreate(
        full_name=f"Dra. Lane {i:03d} Silva", **hours)).id for i in range(lanes)]
    for clinic in ds.clinic_ids:
        retention.create_policy(box.uow(clinic, admin), retention.PolicyCreate(
            data_category="contact", trigger="inactivity", action="delete", period_days=400,
            legal_reference="LGPD art. 16"))
    sealed = box.seal_audit()
    raw = psycopg.connect(_setup.libpq_url(login_url(url, _setup.ROLES.app)),
                          application_name="neonpro-bench-raw",
                          options="-c statement_timeout=60000 -c TimeZone=UTC")
    first_day = datetime.now(ZONE).date() + timedelta(days=2)
    side = Side(name, url, ds, box, raw, api.Lanes(professionals, first_day, ZONE),
                [pid for pid, _ in ds.bench_patients[:2000]])
    print(f"  {name}: migrated and loaded in {time.perf_counter() - t0:.0f} s "
          f"({sum(ds.clinic_sizes):,} patients, {len(ds.clinic_ids)} clinics, "
          f"{sealed:,} audit events sealed)", flush=True)
    return side


# --------------------------------------------------------------------------- operations
def tenant_ops(side: Side, actor: Actor, per_side: int) -> dict[str, tuple[rep.Op, rep.Op]]:
    """(ours, raw) per tenant operation, on one side."""
    box, cur, raw = side.box, side.raw.cursor(), side.raw
    clinic, reads = side.ds.bench_clinic, side.reads
    cipher, blind = FieldCipher(side.ds.keyring), BlindIndexer(side.ds.keyring)
    context = {"clinic_id": str(clinic), "actor_id": str(actor.id), "actor_role": actor.role,
               "request_id": "", "ip": "", "user_agent": "", "session_id": ""}
    context = {k: context.get(k, "") for k in rep.CONTEXT_NAMES}
    first_n = side.ds.next_n
    creates_ours = [rep._create_input(first_n + 2 * i) for i in range(per_side)]
    creates_raw = [rep._raw_insert_row(rep._create_input(first_n + 2 * i + 1), clinic,
                                       actor.id, cipher, blind) for i in range(per_side)]
    lane_ours, lane_raw = side.lanes.take(2)
    page = PageRequest(limit=PAGE, cursor=FIRST_KEYSET_PAGE, with_total=False)

    def uow() -> Any:
        return box.uow(clinic, actor)

    def audit_row(rtype: str, rid: str | None, details: dict[str, object]) -> None:
        values = {"clinic": clinic, "actor": actor.id, "role": actor.role, "action": "VIEW",
                  "rtype": rtype, "rid": rid, "patient": rid if rtype == "patient" else None,
                  "status": "success", "risk": "low", "ip": None, "ua": None,
                  "session": None, "request": None, "details": json.dumps(details)}
        cur.execute(rep.RAW_AUDIT, {n: values[n] for n in rep.AUDIT_NAMES})

    def ours_get(i: int) -> Any:
        return psvc.get_patient(uow(), reads[i % len(reads)])

    def raw_get(i: int) -> Any:
        pid = reads[i % len(reads)]
        cur.execute(rep.RAW_CONTEXT, context)
        cur.execute(rep.RAW_GET, (clinic, pid))
        row = cur.fetchone()
        audit_row("patient", str(pid), {})
        cur.execute(RAW_TOKEN, {"clinic": clinic, "token": uuid.uuid4()})
        raw.commit()
        return row

    def ours_list(_i: int) -> Any:
        return psvc.search_patients(uow(), None, None, page)

    def raw_list(_i: int) -> Any:
        cur.execute(rep.RAW_CONTEXT, context)
        cur.execute(rep.RAW_LIST_FIRST, (clinic, PAGE + 1))
        rows = cur.fetchall()
        audit_row("patients", None, {"returned": PAGE, "filters": []})
        cur.execute(RAW_TOKEN, {"clinic": clinic, "token": uuid.uuid4()})
        raw.commit()
        return rows

    def ours_create(i: int) -> Any:
        return psvc.register_patient(uow(), creates_ours[i % per_side])

    def raw_create(i: int) -> Any:
        cur.execute(rep.RAW_CONTEXT, context)
        cur.execute(rep.RAW_INSERT, creates_raw[i % per_side])
        row = cur.fetchone()
        cur.execute(RAW_TOKEN, {"clinic": clinic, "token": uuid.uuid4()})
        raw.commit()
        return row

    def ours_book(i: int) -> Any:
        start, end = lane_ours.next()
        return scheduling.book_appointment(uow(), AppointmentCreate(
            patient_id=reads[i % len(reads)], professional_id=lane_ours.professional_id,
            start_time=start, end_time=end))

    def raw_book(i: int) -> Any:
        start, end = lane_raw.next()
        cur.execute(rep.RAW_CONTEXT, context)
        row = raw_booking(cur, clinic, actor.id, lane_raw.professional_id,
                          reads[i % len(reads)], start, end)
        raw.commit()
        return row

    return {"get patient by id": (ours_get, raw_get),
            f"list patients, page 1 ({PAGE})": (ours_list, raw_list),
            "create patient": (ours_create, raw_create),
            "book appointment": (ours_book, raw_book)}


def raw_booking(cur: psycopg.Cursor[Any], clinic: uuid.UUID, user: uuid.UUID,
                professional: uuid.UUID, patient: uuid.UUID, start: datetime,
                end: datetime) -> Any:
    """The booking's statements, as bench/baseline_app.py sends them (rules checked)."""
    cur.execute(base.CLINIC_ZONE, {"id_1": clinic})
    zone = ZoneInfo((cur.fetchone() or ("UTC",))[0])
    cur.execute(base.LOCK_PROFESSIONAL, {"clinic_id_1": clinic, "id_1": professional})
    prof = cur.fetchone()
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    day = datetime.combine(local_start.date(), dtime(0), zone)
    cur.execute(base.BLOCKING, {
        "clinic_id_1": clinic, "professional_id_1": professional,
        **{f"status_1_{i}": s for i, s in enumerate(base.BLOCKING_STATUSES, 1)},
        "start_time_1": day + timedelta(days=1), "end_time_1": day})
    base._rules(prof, local_start, local_end, start, end, cur.fetchall())
    cur.execute(RAW_BOOK, {
        "clinic_id": clinic, "id": uuid.uuid4(), "patient_id": patient,
        "professional_id": professional, "start_time": start, "end_time": end,
        "time_zone": zone.key, "appointment_type": "in_person", "status": "scheduled",
        "priority": "normal", "follow_up_required": False, "patient_confirmed": False,
        "whatsapp_reminder_sent": False, "sms_reminder_sent": False,
        "email_reminder_sent": False, "reminder_count": 0, "no_show_risk_factors": "{}",
        "reschedule_count": 0, "payment_status": "pending", "insurance_covered": False,
        "prior_auth_required": False, "prior_auth_status": "not_required",
        "created_by": user, "updated_by": user, "version": 1})
    row = cur.fetchone()
    cur.execute(RAW_TOKEN, {"clinic": clinic, "token": uuid.uuid4()})
    return row


def sanity(sides: dict[str, Side]) -> None:
    """Both paths of both sides return the same rows (a benchmark of wrong work is void)."""
    seen = {}
    for name, side in sides.items():
        (ours_get, raw_get) = side.ops["get patient by id"]
        (ours_list, raw_list) = side.ops[f"list patients, page 1 ({PAGE})"]
        rep.check(ours_get(0).id == raw_get(0)[0], f"{name}: get by id differs")
        page = [p.id for p in ours_list(0).items]
        rep.check(page == [r[0] for r in raw_list(0)[:PAGE]], f"{name}: page 1 differs")
        seen[name] = page
    rep.check(seen["plain"] == seen["citus"], "plain and Citus return different pages")


# ------------------------------------------------------------------------------ router
def counters(side: Side) -> tuple[int, int]:
    with psycopg.connect(side.url, autocommit=True) as conn:
        single, multi = conn.execute(COUNTERS).fetchone() or (0, 0)
    return int(single), int(multi)


def counted(side: Side, work: Callable[[], object]) -> tuple[int, int, object]:
    """(single-shard, multi-shard) queries the coordinator ran during ``work``, its result."""
    before = counters(side)
    result = work()
    after = counters(side)
    return after[0] - before[0], after[1] - before[1], result


def router_share(side: Side, calls: int, start: int) -> list[tuple[str, str, int, int, int]]:
    """(operation, path, calls, single-shard, multi-shard) of each tenant operation (on
    plain PostgreSQL the same calls, uncounted: both sides keep the same data)."""
    rows = []
    for op, pair in side.ops.items():
        for path, fn in zip(("ours", "raw"), pair, strict=True):
            def work(fn: rep.Op = fn) -> None:
                for i in range(start, start + calls):
                    fn(i)
            if side.log is None:
                work()
                continue
            single, multi, _ = counted(side, work)
            rows.append((op, path, calls, single, multi))
    return rows


def strict_pass(side: Side, actor: Actor, calls: int, start: int, per_side: int) -> list[str]:
    """The tenant operations again, on fresh connections of the application login with
    ``citus.multi_task_query_log_level = 'error'``: a multi-shard query would raise (on
    plain PostgreSQL the same calls, without the setting)."""
    app = _setup.ROLES.app
    dbname = side.url.rsplit("/", 1)[1]
    setting = "citus.multi_task_query_log_level"
    citus_side = side.log is not None
    if citus_side:
        with psycopg.connect(side.url, autocommit=True) as conn:
            conn.execute(f'ALTER ROLE {app} IN DATABASE "{dbname}" SET {setting} = error')
    box = Container(_setup.make_settings(side.url), database_url=side.url,
                    keyring=side.ds.keyring)
    raw = psycopg.connect(_setup.libpq_url(login_url(side.url, app)))
    strict = Side(side.name, side.url, side.ds, box, raw, side.lanes, side.reads)
    failures: list[str] = []
    try:
        if citus_side:
            level = raw.execute(f"SHOW {setting}").fetchone()
            rep.check(level == ("error",), f"the strict setting is not on ({level})")
            raw.rollback()
        strict.ops = tenant_ops(strict, actor, per_side)
        for op, pair in strict.ops.items():
            for path, fn in zip(("ours", "raw"), pair, strict=True):
                try:
                    for i in range(start, start + calls):
                        fn(i)
                except Exception as exc:  # a multi-shard query, or anything else
                    failures.append(f"{op} ({path}): {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0][:160]}")
                    with contextlib.suppress(Exception):
                        raw.rollback()
    finally:
        strict.close()
        if citus_side:
            with psycopg.connect(side.url, autocommit=True) as conn:
                conn.execute(f'ALTER ROLE {app} IN DATABASE "{dbname}" RESET {setting}')
    return failures


def multi_task_statements(log: Path | None, mark: int) -> list[str]:
    """The statements the coordinator logged as multi-shard since byte ``mark`` of its log
    (``citus.multi_task_query_log_level = 'log'``), each shortened to its first words."""
    if log is None:
        return []
    with log.open("rb") as f:
        f.seek(mark)
        lines = f.read().decode(errors="replace").splitlines()
    out = []
    for k, line in enumerate(lines):
        if "multi-task query about to be executed" not in line:
            continue
        at = next((j for j in range(k + 1, min(k + 4, len(lines)))
                   if "STATEMENT:" in lines[j]), None)
        if at is None:
            continue
        parts = [lines[at].split("STATEMENT:", 1)[1]]
        parts += [x for x in lines[at + 1:at + 40] if x.startswith("\t")][:40]
        text = " ".join(re.sub(r"--[^\n]*", "", x) for x in parts)
        out.append(" ".join(text.split())[:150])
    return out


def log_mark(side: Side) -> int:
    return side.log.stat().st_size if side.log is not None else 0


def statements(side: Side, index: int) -> list[str]:
    """The statements each path sends per call (client protocol trace, one call each)."""
    engine = side.box.database.engine("app")
    with engine.connect() as c:
        ours = c.connection.driver_connection.pgconn  # type: ignore[union-attr]
    lines = []
    for op, (ours_fn, raw_fn) in side.ops.items():
        for path, pgconn, fn in (("ours", ours, ours_fn), ("raw", side.raw.pgconn, raw_fn)):
            count, what = rep.round_trips(rep.traced(pgconn, lambda fn=fn: fn(index)))
            lines.append(f"  {side.name:5} {op:<28} {path:4} {count} round trips: {what}")
    return lines


# ---------------------------------------------------------------- cross-clinic operations
def fanout_ops(side: Side, checkpoints: Path) -> list[tuple[str, str, Callable[[], object], int]]:
    """(operation, what it reaches, call, repeats) of the service-level operations."""
    box, job = side.box, SystemActors.SCHEDULER
    seq = iter(range(1, 1000))

    def score_all() -> int:  # `neonpro noshow score`: one tenant transaction per clinic
        return sum(noshow.score_upcoming(box.uow(c, job), days=14).scored
                   for c in side.ds.clinic_ids)

    return [
        ("list clinics", "reference table, read", lambda: clinics.list_clinics(
            box.service_uow(job)), 5),
        ("create clinic", "reference table, write", lambda: clinics.create_clinic(
            box.service_uow(job), ClinicCreate(name=f"Clínica Nova {side.name} {next(seq)}")), 3),
        ("expire consents", "every clinic, UPDATE", lambda: consents.expire_consents(
            box.service_uow(job)), 5),
        ("retention plan", "every clinic's policies", lambda: len(retention.plan_retention(
            box, job)), 3),
        ("no-show scoring", "each clinic in turn", score_all, 3),
        ("audit seal", "every chain", lambda: audit.seal(box.audit_chain, job), 1),
        ("audit verify", "every chain", lambda: len(audit.verify(box.audit_chain, job)), 3),
        ("audit checkpoint", "every chain's head", lambda: audit.checkpoint(
            box.audit_chain, checkpoints / side.name).heads, 3),
    ]


@dataclass
class Fanout:
    op: str
    reach: str
    ms: dict[str, float] = field(default_factory=dict)
    result: dict[str, str] = field(default_factory=dict)
    shards: tuple[int, int] = (0, 0)
    multi: list[str] = field(default_factory=list)  # the multi-shard statements, Citus
    repeats: int = 1


def run_fanout(sides: dict[str, Side], checkpoints: Path) -> list[Fanout]:
    plans = {name: fanout_ops(side, checkpoints) for name, side in sides.items()}
    out = []
    for k, (op, reach, _, repeats) in enumerate(plans["plain"]):
        row = Fanout(op, reach, repeats=repeats)
        for name, side in sides.items():
            fn = plans[name][k][2]
            times, single, multi, result = [], 0, 0, None
            mark = log_mark(side)
            for _ in range(repeats):
                before = counters(side) if name == "citus" else (0, 0)
                t0 = time.perf_counter()
                result = fn()
                times.append((time.perf_counter() - t0) * 1000)
                after = counters(side) if name == "citus" else (0, 0)
                single, multi = single + after[0] - before[0], multi + after[1] - before[1]
            row.ms[name] = statistics.median(times)
            row.result[name] = (str(len(result)) if isinstance(result, list) else
                                str(result) if isinstance(result, int) else "done")
            if name == "citus":
                row.shards = (single // repeats, multi // repeats)
                row.multi = multi_task_statements(side.log, mark)
        print(f"  {op}: plain {row.ms['plain']:.1f} ms, Citus {row.ms['citus']:.1f} ms "
              f"(result {row.result['plain']} / {row.result['citus']})", flush=True)
        out.append(row)
    return out


# ---------------------------------------------------------------- going to more machines
def add_worker(cluster: citus.LocalCluster) -> int:
    """A third worker node on the next free port, made like the others (the operator's new
    machine: PostgreSQL and Citus installed, the database and the extension created)."""
    port = citus.start_worker(cluster)
    with psycopg.connect(cluster.url(port, "postgres"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET fsync = on")  # like the bench's other nodes
        conn.execute("SELECT pg_reload_conf()")
    return port


def placements(conn: psycopg.Connection[Any]) -> str:
    rows = conn.execute("SELECT nodeport, count(*) FROM citus_shards GROUP BY nodeport "
                        "ORDER BY nodeport").fetchall()
    return ", ".join(f"{port}: {n}" for port, n in rows)


def operator_steps(cluster: citus.LocalCluster, side: Side, calls: int, start: int) -> list[str]:
    """Add a worker, rebalance, isolate the benchmark clinic on a shard of its own, take a
    cluster-wide restore point; the tenant operations run after each step."""
    lines = ["| step | SQL on the coordinator | ms | shard placements per node port after |",
             "|---|---|---:|---|"]
    clinic = side.ds.bench_clinic
    runs = [0, start]

    def step(what: str, sql: str, params: tuple[Any, ...] = (), shown: str = "") -> None:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            t0 = time.perf_counter()
            for k, statement in enumerate(sql.split("; ")):  # each its own transaction
                conn.execute(statement, params if k == 0 else ())
            ms = (time.perf_counter() - t0) * 1000
            lines.append(f"| {what} | `{shown or sql}` | {ms:,.0f} | {placements(conn)} |")
        for pair in side.ops.values():  # the clinic keeps working after each step
            for fn in pair:
                for i in range(runs[1], runs[1] + calls):
                    fn(i)
                runs[0] += calls
        runs[1] += calls

    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        lines.append(f"| before | | | {placements(conn)} |")
    t0 = time.perf_counter()
    port = add_worker(cluster)
    lines.append(f"| start a node (initdb, start, CREATE EXTENSION citus) | | "
                 f"{(time.perf_counter() - t0) * 1000:,.0f} | |")
    step("add the worker", "SELECT citus_add_node('127.0.0.1', %s)", (port,),
         f"SELECT citus_add_node('127.0.0.1', {port})")
    step("rebalance (writes to a shard wait while it moves)",
         "SELECT citus_rebalance_start(shard_transfer_mode => 'block_writes'); "
         "SELECT citus_rebalance_wait()")
    step("isolate the benchmark clinic (all its tables)",
         "SELECT isolate_tenant_to_new_shard('patients', %s, 'CASCADE', "
         "shard_transfer_mode => 'block_writes')", (clinic,),
         "SELECT isolate_tenant_to_new_shard('patients', '<clinic id>', 'CASCADE', "
         "shard_transfer_mode => 'block_writes')")
    step("restore point on every node", "SELECT citus_create_restore_point('neonpro-bench')")
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT s.shardid, s.shardminvalue = s.shardmaxvalue FROM pg_dist_shard s "
            "WHERE s.shardid = get_shard_id_for_distribution_column('patients', %s)",
            (clinic,)).fetchone()
    lines.append(f"\nthe benchmark clinic's shard of patients ({row[0] if row else '?'}) holds "
                 f"that clinic alone: {bool(row and row[1])}; the tenant operations ran "
                 f"{runs[0]} times between the steps, without an error")
    return lines


# ------------------------------------------------------------------------------ report
def pct(samples: list[int], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] / 1e6


def tenant_table(results: dict[str, dict[str, tuple[rep.Side, rep.Side]]]) -> list[str]:
    lines = ["| operation | path | plain p50 ms | plain p95 ms | plain ops/s | Citus p50 ms "
             "| Citus p95 ms | Citus ops/s | Citus / plain (p50) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for op, by_side in results.items():
        for k, path in enumerate(("ours", "raw")):
            p, c = by_side["plain"][k], by_side["citus"][k]
            ops = [1e9 / statistics.mean(s.samples) for s in (p, c)]
            lines.append(f"| {op} | {path} | {p.median_us / 1000:.2f} | {pct(p.samples, 95):.2f} "
                         f"| {ops[0]:,.0f} | {c.median_us / 1000:.2f} | {pct(c.samples, 95):.2f} "
                         f"| {ops[1]:,.0f} | {c.median_us / p.median_us:.2f}x |")
    lines += ["", "| operation | ours / raw, plain | ours / raw, Citus |", "|---|---:|---:|"]
    for op, by_side in results.items():
        ratios = [by_side[s][0].median_us / by_side[s][1].median_us for s in SIDES]
        lines.append(f"| {op} | {ratios[0]:.2f}x | {ratios[1]:.2f}x |")
    return lines


def router_table(rows: list[tuple[str, str, int, int, int]], failures: list[str],
                 strict_calls: int) -> list[str]:
    lines = ["| operation | path | calls | single-shard (router) queries | multi-shard "
             "queries | router share |", "|---|---|---:|---:|---:|---:|"]
    total_single = total_multi = 0
    for op, path, calls, single, multi in rows:
        total_single, total_multi = total_single + single, total_multi + multi
        share = single / (single + multi) if single + multi else float("nan")
        lines.append(f"| {op} | {path} | {calls} | {single} ({single / calls:.1f} per call) "
                     f"| {multi} | {share:.0%} |")
    whole = total_single / (total_single + total_multi) if total_single + total_multi else 0
    lines += ["", f"router share of the tenant workload: {total_single} of "
              f"{total_single + total_multi} distributed queries ({whole:.1%})",
              f"strict pass (citus.multi_task_query_log_level = error on the application "
              f"login, fresh connections, {strict_calls} calls per operation and path): "
              + ("no multi-shard query" if not failures else f"{len(failures)} failed")]
    lines += [f"  {f}" for f in failures]
    return lines


def fanout_table(rows: list[Fanout]) -> list[str]:
    lines = ["| operation (service login) | reaches | plain ms | Citus ms | Citus / plain "
             "| Citus single-shard queries | Citus multi-shard queries |",
             "|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.op} | {r.reach} | {r.ms['plain']:.1f} | {r.ms['citus']:.1f} | "
              f"{r.ms['citus'] / r.ms['plain']:.2f}x | {r.shards[0]} | {r.shards[1]} |"
              for r in rows]
    lines += ["", "the statements Citus ran as multi-shard, per operation (coordinator log, "
              "citus.multi_task_query_log_level = log; xN: N executions):"]
    for r in rows:
        for text, count in Counter(r.multi).most_common():
            lines.append(f"  {r.op}: x{count / r.repeats:g} {text}")
    return lines


# -------------------------------------------------------------------------------- main
def measure(sides: dict[str, Side], n: int, rounds: int,
            warmup: int) -> dict[str, dict[str, tuple[rep.Side, rep.Side]]]:
    results: dict[str, dict[str, tuple[rep.Side, rep.Side]]] = {}
    t0 = time.perf_counter()
    for op in sides["plain"].ops:
        fns = [f for name in SIDES for f in sides[name].ops[op]]
        got = rep.compare(fns, n, rounds, warmup)
        results[op] = {"plain": (got[0], got[1]), "citus": (got[2], got[3])}
        print(f"  {op}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    return results


def run(args: argparse.Namespace, cluster: citus.LocalCluster, plain_url: str) -> list[str]:
    n, rounds, warmup = args.ops, args.rounds, args.warmup
    step_calls = 5  # calls per operation and path after each operator step
    per_side = warmup + rounds * n + 2 * args.router_calls + 4 * step_calls + 10
    citus_url = cluster.url()
    with psycopg.connect(citus_url, autocommit=True) as conn:
        for setting in ("citus.enable_stat_counters = on",
                        "citus.multi_task_query_log_level = log"):
            conn.execute(f'ALTER DATABASE "{cluster.database}" SET {setting}')
    keyring = make_keyring()
    print(f"loading {args.patients:,} patients in {args.clinics} clinics on both ...",
          flush=True)
    sides: dict[str, Side] = {}
    try:
        for name, url in (("plain", plain_url), ("citus", citus_url)):
            sides[name] = seed_side(name, url, args, keyring, lanes=6)
        sides["citus"].log = Path(cluster.base) / f"node-{cluster.coordinator}.log"
        actor = Actor(uuid.UUID(int=0xB0B), "admin")
        for side in sides.values():
            side.ops = tenant_ops(side, actor, per_side)
        sanity(sides)
        print(f"\nmeasuring: {rounds} rounds x {n} calls per operation, path and side "
              f"(warm-up {warmup}) ...", flush=True)
        results = measure(sides, n, rounds, warmup)
        trips = [line for side in sides.values() for line in statements(side, per_side - 1)]
        start = warmup + rounds * n + 1
        print("router share ...", flush=True)
        mark = log_mark(sides["citus"])
        router = []
        for side in sides.values():
            router += router_share(side, args.router_calls, start)
        tenant_multi = multi_task_statements(sides["citus"].log, mark)
        failures = [f for side in sides.values() for f in strict_pass(
            side, actor, args.router_calls, start + args.router_calls, per_side)]
        print("cross-clinic service operations ...", flush=True)
        with tempfile.TemporaryDirectory(prefix="neonpro-bench-checkpoints-") as tmp:
            fan = run_fanout(sides, Path(tmp))
        steps: list[str] = []
        if not args.no_operator_steps:
            print("operator steps on the Citus cluster ...", flush=True)
            steps = ["going to more machines, rehearsed on this cluster (Citus only):", "",
                     *operator_steps(cluster, sides["citus"], step_calls,
                                     start + 2 * args.router_calls)]
    finally:
        for side in sides.values():
            side.close()
    return [*tenant_table(results), "", "statements per call (the client's protocol trace):",
            *trips, "", *router_table(router, failures, args.router_calls),
            f"multi-shard statements in the tenant passes (coordinator log): {len(tenant_multi)}",
            *[f"  {t}" for t in tenant_multi[:10]], "", *fanout_table(fan), "", *steps]


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "?")
    return (f"{os.cpu_count()} CPUs ({cpu}), {platform.platform()}, python "
            f"{platform.python_version()}, psycopg {psycopg.__version__}")


def versions(cluster: citus.LocalCluster, plain_url: str) -> str:
    def show(conn: psycopg.Connection[Any]) -> str:
        got = [conn.execute(f"SHOW {name}").fetchone() for name in
               ("server_version", "fsync", "synchronous_commit", "shared_buffers")]
        version, fsync, sync, buffers = (g[0] if g else "?" for g in got)
        return (f"PostgreSQL {version.split()[0]}, fsync={fsync}, synchronous_commit={sync}, "
                f"shared_buffers={buffers}")

    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'"
                           ).fetchone()
        nodes = show(conn)
    with psycopg.connect(plain_url, autocommit=True) as conn:
        plain = show(conn)
    return (f"plain: {plain} (a server other work shares)\n"
            f"Citus {ext[0] if ext else '?'}: 3 nodes of {nodes} each, shard_count=8 "
            f"(ports {cluster.coordinator}-{cluster.workers[-1]})")


@contextlib.contextmanager
def databases(admin_url: str) -> Iterator[tuple[citus.LocalCluster, str]]:
    """The Citus cluster and the plain scratch database, both removed on leaving."""
    cluster = start_cluster()
    plain_url = None
    try:
        plain_url = _setup.create_scratch_database(admin_url)
        yield cluster, plain_url
    finally:
        if plain_url is not None:
            with contextlib.suppress(Exception):
                _setup.drop_scratch_database(admin_url, plain_url)
        citus.down(Path(cluster.base))
        with contextlib.suppress(OSError):
            Path(cluster.base).parent.rmdir()
        print("scratch database dropped, Citus cluster stopped and removed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--clinics", type=int, default=20)
    parser.add_argument("--ops", type=int, default=30, help="calls per round (default 30)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--router-calls", type=int, default=20,
                        help="calls per operation and path counted for the router share")
    parser.add_argument("--no-operator-steps", action="store_true",
                        help="skip adding a worker, rebalancing and isolating a clinic")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 patients in 5 clinics, 3 rounds of 10")
    parser.add_argument("--url", default=_setup.DEFAULT_ADMIN_URL,
                        help="plain server's admin URL, only used to create and drop the "
                             "scratch database")
    args = parser.parse_args(argv)
    if args.quick:
        args.patients, args.clinics = min(args.patients, 2_000), min(args.clinics, 5)
        args.ops, args.rounds, args.warmup, args.router_calls = 10, 3, 5, 5
    # a stopped run still stops and removes its cluster and drops its database
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cores = os.cpu_count()
    started = datetime.now(UTC)
    print(f"neonpro on plain PostgreSQL and on Citus - {started:%Y-%m-%d %H:%M} UTC, load "
          f"average {os.getloadavg()[0]:.1f}")
    print(HEADLINE.format(cores=cores))
    print(machine())
    t0 = time.perf_counter()
    with databases(args.url) as (cluster, plain_url):
        print(versions(cluster, plain_url))
        lines = run(args, cluster, plain_url)
    print(f"\n{HEADLINE.format(cores=cores)}")
    print(f"one client thread; {args.patients:,} patients in "
          f"{args.clinics} clinics; p50/p95 of {args.rounds} rounds x {args.ops} calls; "
          "ops/s = 1 / mean (one client, calls one after the other)\n")
    for line in lines:
        print(line)
    print(f"\nwhole run: {time.perf_counter() - t0:.0f} s; load average now "
          f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
