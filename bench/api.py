"""HTTP API benchmark: GET a patient and POST an appointment over loopback, beside the
same service calls made in-process, with N concurrent clients for a fixed time.

    .venv/bin/python bench/api.py                  # 20 clients, 30 s per run
    .venv/bin/python bench/api.py --quick          # 5 s per run
    .venv/bin/python bench/api.py --seconds 60 --clients 40 --no-wrk
    .venv/bin/python bench/api.py --profile DIR    # then py-spy the server (extra runs)
    .venv/bin/python bench/api.py --baseline-only --rounds 5   # only neonpro vs baseline
    .venv/bin/python bench/api.py --no-baseline    # only the neonpro runs below

Setup: a scratch database ``neonpro_bench_*`` on the server of ``--url`` (only used to
CREATE and DROP it), migrated; a fresh key file and JWT secret in a temporary directory;
one clinic, ``--patients`` patients registered through the service (CPF, CNS and notes
encrypted), and professionals who work 00:00-23:59 every day with no buffer and a daily
maximum of 200. ``neonpro serve --no-migrate`` runs as a subprocess (one uvicorn
process, the settings of ``--environment``) on a free loopback port; the run starts
once ``/health/ready`` answers 200.

Runs, each for ``--seconds`` (closed loop: every client sends its next request when the
previous answer arrives):

* ``http``: N Python threads, one ``httpx.Client`` each (one keep-alive connection),
  after a short warm-up.
* ``wrk``: the same requests from ``wrk`` (C, epoll; ``-t N -c N``, one connection per
  thread, Lua script sets the bearer token and builds the bodies), if wrk is installed.
  The Python generator costs CPU on the same two cores as the server; wrk hardly does,
  so wrk shows what the server can do, httpx what a Python client sees.
* ``in-process``: N threads calling the service function on a ``Container`` with the
  server's settings (same pool) and the same background audit sealer:
  ``get_patient(container.uow(clinic, actor), id)``, ``book_appointment(uow, data)``.

GET reads a random patient (every read is audited: one INSERT in the read's
transaction). POST books a 30-minute slot: every client has its own professional (a
"lane") and walks forward through 24 slots a day (06:00-18:00 clinic time), so no two
bookings ever overlap and a 409 is a real error; runs never share lanes.

Latency is per request, wall clock, measured by the client. ``server app`` is the mean
the API's own histogram saw (the middleware: routing, dependencies, handler, response),
so ``client p50 - server mean`` is roughly the HTTP parse/serialise + loop + client cost.
CPU is split from /proc: the load generator, the server process, the PostgreSQL
backends of the scratch database and everything else on the machine (``other``: other
work running at the same time, which this benchmark cannot control). ``server CPU
ms/req`` (the serving process's CPU per successful request) is the figure least
disturbed by such work; req/s and the percentiles are not.

Then, unless ``--no-baseline``, the baseline comparison (issue 18; bench/_baseline.py):
bench/baseline_app.py, a small Starlette app on a psycopg async pool doing the same
database work per request (the same JWT and session checks, the same statements in one
transaction on the application login, no decryption), runs beside neonpro on the same
scratch database; after a check that both answer the same patient alike and that both
bookings are in the database with their audit events, ``--rounds`` rounds drive both
interleaved with the same clients (httpx, wrk), each run on booking lanes of its own and
starting once neonpro's background sealer has sealed every audit event of the runs before,
and print medians of req/s, p50, p99, server CPU ms/req, errors, the ratios neonpro /
baseline and the goals (CPU per request <= 1.5x, throughput >= 0.67x, GET p99 < 100 ms,
0 errors). ``--baseline-only`` skips the neonpro-only runs above.

``--profile DIR`` (needs ``pip install py-spy``) adds runs under ``py-spy record --gil``
and prints own and inclusive time per function; the attribution is indicative (py-spy
sees only part of the GIL holders' samples), compare variants by measurement.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import random
import re
import resource
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _setup

from neonpro.adapters.auth import TokenCodec, hash_password
from neonpro.adapters.crypto import generate_key_file
from neonpro.adapters.db import migrate
from neonpro.adapters.db.logins import login_url
from neonpro.bootstrap import Container
from neonpro.config import Environment, Settings
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.appointment import AppointmentCreate
from neonpro.domain.schemas.clinic import ClinicCreate, StaffUserCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.vocabulary import ClinicRole
from neonpro.services import auth, catalog, clinics, scheduling
from neonpro.services import patients as psvc

GOAL_P99_MS = 100.0
SLOTS_PER_DAY = 24  # 06:00-18:00, 30 minutes each
SLOT = timedelta(minutes=30)
FIRST_HOUR = 6
TICK = os.sysconf("SC_CLK_TCK")
VENV_BIN = Path(sys.executable).parent
SYSTEM = Actor(uuid.UUID(int=0x5E5_0000_0099), "system")
# one process by default, like the baseline; --workers N serves with N (CPU is summed over
# the supervisor and its workers)
SERVER_WORKERS = 1
GET_ROUTE = "/patients/{patient_id}"
POST_ROUTE = "/appointments"


# ------------------------------------------------------------------------ CPU accounting
def _proc_cpu(pid: int) -> float:
    """utime + stime of a process, seconds (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return 0.0
    fields_ = stat[stat.rindex(b")") + 2:].split()
    return (int(fields_[11]) + int(fields_[12])) / TICK


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live children (``neonpro serve --workers N``: the
    supervisor, which seals the audit trail, and its workers)."""
    total = _proc_cpu(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_bytes()
        except OSError:
            continue
        if int(stat[stat.rindex(b")") + 2:].split()[1]) == pid:
            total += _proc_cpu(int(entry.name))
    return total


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0]
    parts = [int(x) for x in first.split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return (total - idle) / TICK, total / TICK


def _backends(dbname: str) -> list[int]:
    """PostgreSQL backends connected to the scratch database (from their process titles)."""
    found = []
    needle = f" {dbname} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres:") and needle in title:
            found.append(int(entry.name))
    return found


@dataclass
class CpuSnap:
    wall: float
    busy: float
    total: float
    me: float
    children: float
    server: float
    pg: dict[int, float]


class CpuMeter:
    def __init__(self, dbname: str, server_pid: int | None) -> None:
        self.dbname = dbname
        self.server_pid = server_pid

    def snap(self) -> CpuSnap:
        busy, total = _machine_busy()
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return CpuSnap(
            time.perf_counter(), busy, total, time.process_time(), kids.ru_utime + kids.ru_stime,
            _tree_cpu(self.server_pid) if self.server_pid else 0.0,
            {pid: _proc_cpu(pid) for pid in _backends(self.dbname)},
        )

    @staticmethod
    def split(a: CpuSnap, b: CpuSnap, generator: str) -> dict[str, float]:
        """Cores used (CPU seconds / wall second) by each party between two snapshots."""
        wall = b.wall - a.wall
        pg = sum(v - a.pg.get(pid, 0.0) for pid, v in b.pg.items())
        gen = (b.me - a.me) if generator == "self" else (b.children - a.children)
        server = b.server - a.server
        busy = b.busy - a.busy
        cores = {"generator": gen / wall, "server": server / wall, "postgres": pg / wall,
                 "machine": busy / wall}
        cores["other"] = max(cores["machine"] - cores["generator"] - cores["server"]
                             - cores["postgres"], 0.0)
        return cores


# ---------------------------------------------------------------------------- results
@dataclass
class Result:
    name: str
    op: str
    seconds: float
    latencies_ns: list[int] = field(default_factory=list)
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)
    server_mean_ms: float | None = None
    # set when the tool reports percentiles itself (wrk)
    given: dict[str, float] | None = None

    @property
    def total(self) -> int:
        return self.ok + sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        """Latency percentile in ms (nearest rank)."""
        if self.given is not None:
            return self.given[f"p{p:g}"]
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        rank = max(round(p / 100 * len(ordered) + 0.5) - 1, 0)
        return ordered[min(rank, len(ordered) - 1)] / 1e6

    @property
    def max_ms(self) -> float:
        if self.given is not None:
            return self.given["max"]
        return max(self.latencies_ns) / 1e6 if self.latencies_ns else float("nan")

    @property
    def mean_ms(self) -> float:
        if self.given is not None:
            return self.given["mean"]
        return statistics.fmean(self.latencies_ns) / 1e6 if self.latencies_ns else float("nan")

    def error_text(self) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "0"


def closed_loop(clients: int, seconds: float,
                make: Callable[[int], Callable[[], int | str]], ok_status: int) -> Result:
    """``clients`` threads, each calling its own ``make(i)()`` until the deadline; a call
    returns an HTTP status (or a short error name)."""
    per_lat: list[list[int]] = [[] for _ in range(clients)]
    per_status: list[Counter[str | int]] = [Counter() for _ in range(clients)]
    calls = [make(i) for i in range(clients)]
    barrier = threading.Barrier(clients + 1)
    deadline = [0.0]

    def run(i: int) -> None:
        call, lat, status = calls[i], per_lat[i], per_status[i]
        clock = time.perf_counter_ns
        barrier.wait()
        end = deadline[0]
        while time.perf_counter() < end:
            t0 = clock()
            try:
                code: int | str = call()
            except Exception as exc:
                code = type(exc).__name__
            lat.append(clock() - t0)
            status[code] += 1

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    deadline[0] = start + seconds
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    result = Result("", "", elapsed)
    for lat, status in zip(per_lat, per_status, strict=True):
        result.latencies_ns.extend(lat)
        for code, n in status.items():
            if code == ok_status:
                result.ok += n
            else:
                result.errors[str(code)] += n
    return result


# ------------------------------------------------------------------------------ lanes
@dataclass
class Lane:
    """One professional's own time line: slot k is day k // 24, 06:00 + 30 min * (k % 24)."""

    professional_id: uuid.UUID
    base: datetime  # first slot, UTC
    k: int = 0

    def next(self) -> tuple[datetime, datetime]:
        day, n = divmod(self.k, SLOTS_PER_DAY)
        self.k += 1
        start = self.base + timedelta(days=day) + n * SLOT
        return start, start + SLOT


class Lanes:
    def __init__(self, professionals: list[uuid.UUID], first_day: date, zone: ZoneInfo) -> None:
        self._free = list(professionals)
        base = datetime.combine(first_day, dtime(FIRST_HOUR), tzinfo=zone).astimezone(UTC)
        self._base = base

    def take(self, n: int) -> list[Lane]:
        if len(self._free) < n:
            raise RuntimeError("out of professionals for booking lanes")
        taken, self._free = self._free[:n], self._free[n:]
        return [Lane(p, self._base) for p in taken]


# ------------------------------------------------------------------------------ setup
@dataclass
class World:
    url: str
    dbname: str
    workdir: Path
    settings: Settings
    container: Container
    clinic: uuid.UUID
    patients: list[uuid.UUID]
    lanes: Lanes
    token: str
    user_id: uuid.UUID
    token_id: str
    zone: ZoneInfo


def build_world(args: argparse.Namespace, url: str, workdir: Path, lanes_needed: int) -> World:
    migrate.upgrade(url, _setup.ROLES)
    key_file = workdir / "keys.json"
    generate_key_file(key_file)
    jwt_secret = uuid.uuid4().hex + uuid.uuid4().hex
    # one login per role (production refuses to derive them): the bootstrap URL's logins
    settings = Settings(environment=Environment(args.environment), database_url=url,
                        app_database_url=login_url(url, _setup.ROLES.app),
                        service_database_url=login_url(url, _setup.ROLES.service),
                        key_file=key_file, jwt_secret=jwt_secret,
                        _env_file=None)
    box = Container(settings, database_url=url)
    clinic = clinics.create_clinic(box.service_uow(SYSTEM),
                                   ClinicCreate(name="Clínica Bench API")).id
    admin = Actor(uuid.uuid4(), "admin")
    rng = random.Random(20261127)
    lane_hours = {"work_start_time": dtime(0, 0), "work_end_time": dtime(23, 59),
                  "can_work_weekends": True, "appointment_buffer_minutes": 0,
                  "max_daily_appointments": 200}
    professionals = [
        catalog.add_professional(box.uow(clinic, admin), ProfessionalCreate(
            full_name=f"Dra. Lane {i:03d} {rng.choice(_setup.FAMILY)}", **lane_hours)).id
        for i in range(lanes_needed)
    ]
    patients = []
    for n in range(args.patients):
        given = rng.choice(_setup.GIVEN)
        patients.append(psvc.register_patient(box.uow(clinic, admin), PatientCreate(
            full_name=f"{given} {rng.choice(_setup.FAMILY)} {rng.choice(_setup.FAMILY)}",
            cpf=_setup.cpf(n), cns=_setup.cns(n), birth_date=date(1950, 1, 1) + timedelta(
                days=rng.randrange(70 * 365)),
            phone_primary=f"(11) 9{rng.randrange(1000, 9999)}-{rng.randrange(1000, 9999)}",
            email=f"paciente{n}@example.com.br", city=rng.choice(_setup.CITIES),
            patient_notes=rng.choice(_setup.NOTES), internal_notes=rng.choice(_setup.NOTES),
            allergies=["dipirona"] if n % 10 == 0 else [])).id)
    box.seal_audit()
    # a staff account, admin of the clinic, signed in: a real "login" session, whose
    # membership every request's session check (neonpro_session_live) looks at
    email, password = "bench.admin@example.com.br", uuid.uuid4().hex
    user_id = clinics.add_staff_member(box.service_uow(SYSTEM), clinic, StaffUserCreate(
        email=email, display_name="Bench Admin", password_hash=hash_password(password)),
        ClinicRole.ADMIN)[0].id
    issued = auth.login(lambda: box.service_uow(SYSTEM), email, password, clinic,
                        "127.0.0.1", limits=box.signin_limits,
                        mint=TokenCodec(settings, box.keyring).mint, passwords=box.passwords)
    token, token_id = issued.token, issued.token_id
    zone = ZoneInfo("America/Sao_Paulo")
    first_day = datetime.now(zone).date() + timedelta(days=2)
    return World(url, url.rsplit("/", 1)[1], workdir, settings, box, clinic, patients,
                 Lanes(professionals, first_day, zone), token, user_id, token_id, zone)


# ----------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, world: World, extra_pythonpath: str | None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = world.workdir / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEONPRO_")}
        env.update(
            NEONPRO_ENVIRONMENT=world.settings.environment.value,
            NEONPRO_DATABASE_URL=world.url,
            NEONPRO_APP_DATABASE_URL=login_url(world.url, _setup.ROLES.app),
            NEONPRO_SERVICE_DATABASE_URL=login_url(world.url, _setup.ROLES.service),
            NEONPRO_KEY_FILE=str(world.settings.key_file),
            NEONPRO_JWT_SECRET=world.settings.jwt_secret.get_secret_value(),  # type: ignore[union-attr]
        )
        if extra_pythonpath:
            env["PYTHONPATH"] = extra_pythonpath + os.pathsep + env.get("PYTHONPATH", "")
        self.command = [str(VENV_BIN / "neonpro"), "serve", "--host", "127.0.0.1",
                        "--port", str(self.port), "--no-migrate",
                        "--workers", str(SERVER_WORKERS)]
        self._log = self.log_path.open("wb")  # closed in stop()
        # cwd: the temporary directory, so no stray .env file is read
        self.proc = subprocess.Popen(self.command, env=env, cwd=world.workdir,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> float:
        t0 = time.perf_counter()
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while time.perf_counter() - t0 < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited ({self.proc.returncode}):\n{self.tail()}")
                try:
                    if client.get("/health/ready").status_code == 200:
                        return time.perf_counter() - t0
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def server_stats(self, route: str, method: str) -> tuple[float, float]:
        """(count, sum seconds) of the API's latency histogram for one route."""
        text = httpx.get(f"{self.base}/metrics", timeout=10).text
        pattern = (r"neonpro_http_request_duration_seconds_(count|sum)\{method=\""
                   + method + r'",route="' + re.escape(route) + r'"\} ([0-9.e+-]+)')
        found = {m.group(1): float(m.group(2)) for m in re.finditer(pattern, text)}
        return found.get("count", 0.0), found.get("sum", 0.0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ------------------------------------------------------------------------- operations
def booking_body(world: World, lane: Lane) -> dict[str, str]:
    start, end = lane.next()
    return {"patient_id": str(random.choice(world.patients)),
            "professional_id": str(lane.professional_id),
            "start_time": start.isoformat(), "end_time": end.isoformat()}


def http_makers(world: World, server: Server, clients: list[httpx.Client],
                lanes: list[Lane] | None) -> Callable[[int], Callable[[], int | str]]:
    patients = world.patients

    def make(i: int) -> Callable[[], int | str]:
        client = clients[i]
        if lanes is None:
            def get() -> int:
                return client.get(f"/patients/{random.choice(patients)}").status_code
            return get
        lane = lanes[i]

        def post() -> int:
            return client.post("/appointments", json=booking_body(world, lane)).status_code
        return post

    return make


def inproc_makers(world: World, box: Container,
                  lanes: list[Lane] | None) -> Callable[[int], Callable[[], int | str]]:
    patients, clinic = world.patients, world.clinic

    def actor() -> Actor:  # what the API builds from the token and the request
        return Actor(world.user_id, "admin", ip_address="127.0.0.1",
                     request_id=uuid.uuid4().hex, user_agent="bench-inprocess",
                     session_id=world.token_id)

    def make(i: int) -> Callable[[], int | str]:
        if lanes is None:
            def get() -> int:
                psvc.get_patient(box.uow(clinic, actor()), random.choice(patients))
                return 200
            return get
        lane = lanes[i]

        def post() -> int:
            data = AppointmentCreate.model_validate(booking_body(world, lane))
            scheduling.book_appointment(box.uow(clinic, actor()), data)
            return 201
        return post

    return make


# -------------------------------------------------------------------------------- wrk
WRK_LUA = r"""
-- generated by bench/api.py
local token = "%(token)s"
local patients = {%(patients)s}
local lanes = {%(lanes)s}          -- professional id per wrk thread
local base = %(base)d              -- epoch of the first slot
local per_day, slot = %(per_day)d, %(slot)d
local post = %(post)s
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
  k = 0
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
end

local function iso(t) return os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ", t) end

function request()
  local patient = patients[math.random(#patients)]
  if not post then
    return wrk.format("GET", "/patients/" .. patient)
  end
  local t = base + math.floor(k / per_day) * 86400 + (k %% per_day) * slot
  k = k + 1
  local body = '{"patient_id":"' .. patient .. '","professional_id":"' .. lanes[tid + 1] ..
    '","start_time":"' .. iso(t) .. '","end_time":"' .. iso(t + slot) .. '"}'
  return wrk.format("POST", "/appointments", nil, body)
end

statuses = {}
function response(status, headers, body)
  if status ~= %(ok)d then
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH requests=%%d duration_us=%%d connect=%%d read=%%d write=%%d " ..
    "status=%%d timeout=%%d\n", summary.requests, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout))
  io.write(string.format("BENCH_LAT mean=%%f p50=%%d p99=%%d p90=%%d max=%%d\n", latency.mean,
    latency:percentile(50), latency:percentile(99), latency:percentile(90), latency.max))
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    if s then
      for code, n in pairs(s) do io.write(string.format("BENCH_STATUS %%d %%d\n", code, n)) end
    end
  end
end
"""


def run_wrk(world: World, server: Server, clients: int, seconds: float,
            lanes: list[Lane] | None) -> Result:
    post = lanes is not None
    script = WRK_LUA % {
        "token": world.token,
        "patients": ",".join(f'"{p}"' for p in world.patients),
        "lanes": ",".join(f'"{lane.professional_id}"' for lane in lanes or []),
        "base": int(lanes[0].base.timestamp()) if lanes else 0,
        "per_day": SLOTS_PER_DAY, "slot": int(SLOT.total_seconds()),
        "post": "true" if post else "false", "ok": 201 if post else 200,
    }
    path = world.workdir / ("wrk_post.lua" if post else "wrk_get.lua")
    path.write_text(script)
    cmd = ["wrk", "-t", str(clients), "-c", str(clients), "-d", f"{int(seconds)}s",
           "--timeout", "10s", "-s", str(path), server.base]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    out = done.stdout
    head = re.search(r"BENCH requests=(\d+) duration_us=(\d+) connect=(\d+) read=(\d+) "
                     r"write=(\d+) status=(\d+) timeout=(\d+)", out)
    lat = re.search(r"BENCH_LAT mean=([0-9.]+) p50=(\d+) p99=(\d+) p90=(\d+) max=(\d+)", out)
    if head is None or lat is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{out}\n{done.stderr}")
    requests, duration = int(head.group(1)), int(head.group(2)) / 1e6
    result = Result("wrk", "POST" if post else "GET", duration)
    for name, value in zip(("connect", "read", "write", "timeout"),
                           (head.group(3), head.group(4), head.group(5), head.group(7)),
                           strict=True):
        if int(value):
            result.errors[f"socket {name}"] += int(value)
    for m in re.finditer(r"BENCH_STATUS (\d+) (\d+)", out):
        result.errors[m.group(1)] += int(m.group(2))
    bad_status = int(head.group(6))
    result.ok = requests - bad_status
    result.given = {"mean": float(lat.group(1)) / 1000, "p50": int(lat.group(2)) / 1000,
                    "p99": int(lat.group(3)) / 1000, "p90": int(lat.group(4)) / 1000,
                    "max": int(lat.group(5)) / 1000}
    return result


# ---------------------------------------------------------------------------- driving
@dataclass
class Plan:
    clients: int
    seconds: float
    warmup: float
    wrk: bool


def measure(name: str, op: str, meter: CpuMeter, generator: str,
            body: Callable[[], Result], server: Server | None) -> Result:
    route, method = (GET_ROUTE, "GET") if op == "GET" else (POST_ROUTE, "POST")
    before_srv = server.server_stats(route, method) if server else None
    a = meter.snap()
    result = body()
    b = meter.snap()
    result.name, result.op = name, op
    result.cpu = CpuMeter.split(a, b, generator)
    if server and before_srv:
        count, total = server.server_stats(route, method)
        n = count - before_srv[0]
        result.server_mean_ms = (total - before_srv[1]) / n * 1000 if n else None
    return result


def run_all(world: World, server: Server, plan: Plan, box: Container) -> list[Result]:
    meter = CpuMeter(world.dbname, server.pid)
    results: list[Result] = []
    headers = {"Authorization": f"Bearer {world.token}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    http_clients = [httpx.Client(base_url=server.base, headers=headers, timeout=30,
                                 limits=limits) for _ in range(plan.clients)]
    try:
        for op in ("GET", "POST"):
            ok = 200 if op == "GET" else 201
            # --- HTTP, Python threads
            lanes = world.lanes.take(plan.clients) if op == "POST" else None
            make = http_makers(world, server, http_clients, lanes)
            closed_loop(plan.clients, plan.warmup, make, ok)  # warm-up (lanes advance)
            print(f"  {op} http (httpx, {plan.clients} threads) ...", flush=True)
            r = measure("http (httpx)", op, meter, "self",
                        partial(closed_loop, plan.clients, plan.seconds, make, ok), server)
            results.append(r)
            show(r)
            # --- HTTP, wrk
            if plan.wrk:
                lanes = world.lanes.take(plan.clients) if op == "POST" else None
                print(f"  {op} http (wrk -t{plan.clients} -c{plan.clients}) ...", flush=True)
                r = measure("http (wrk)", op, meter, "children",
                            partial(run_wrk, world, server, plan.clients, plan.seconds, lanes),
                            server)
                results.append(r)
                show(r)
            # --- in-process
            lanes = world.lanes.take(plan.clients) if op == "POST" else None
            make = inproc_makers(world, box, lanes)
            closed_loop(plan.clients, plan.warmup, make, ok)
            print(f"  {op} in-process ({plan.clients} threads) ...", flush=True)
            r = measure("in-process", op, meter, "self",
                        partial(closed_loop, plan.clients, plan.seconds, make, ok), None)
            results.append(r)
            show(r)
    finally:
        for c in http_clients:
            c.close()
    return results


def show(r: Result) -> None:
    print(f"    {r.rps:8.0f} req/s  p50 {r.pct(50):6.1f} ms  p99 {r.pct(99):6.1f} ms  "
          f"max {r.max_ms:7.1f} ms  errors {r.error_text()}", flush=True)


# ---------------------------------------------------------------------------- reports
def table(results: list[Result]) -> str:
    lines = [
        "| op | client | req/s | p50 ms | p99 ms | max ms | server app mean ms "
        "| server CPU ms/req | errors | CPU cores: generator / server / postgres / other |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        srv = f"{r.server_mean_ms:.1f}" if r.server_mean_ms is not None else "-"
        gen = "(in server)" if r.name == "in-process" else f"{r.cpu['generator']:.2f}"
        server = (f"{r.cpu['generator']:.2f} (same process)" if r.name == "in-process"
                  else f"{r.cpu['server']:.2f}")
        lines.append(
            f"| {r.op} | {r.name} | {r.rps:,.0f} | {r.pct(50):.1f} | {r.pct(99):.1f} "
            f"| {r.max_ms:.1f} | {srv} | {server_cpu_ms(r):.2f} | {r.error_text()} "
            f"| {gen} / {server} / {r.cpu['postgres']:.2f} / {r.cpu['other']:.2f} |")
    return "\n".join(lines)


def server_cpu_ms(r: Result) -> float:
    """CPU the serving process spent per successful request (in-process: the benchmark
    process, services and load loop together): less sensitive to other load than req/s."""
    cores = r.cpu["generator"] if r.name == "in-process" else r.cpu["server"]
    return cores * r.seconds / r.ok * 1000 if r.ok else float("nan")


def ratios(results: list[Result]) -> str:
    lines = ["| op | HTTP client | p50 HTTP / in-process | throughput HTTP / in-process |",
             "|---|---|---:|---:|"]
    for op in ("GET", "POST"):
        base = next((r for r in results if r.op == op and r.name == "in-process"), None)
        if base is None:
            continue
        lines.extend(f"| {op} | {r.name} | {r.pct(50) / base.pct(50):.2f}x "
                     f"| {r.rps / base.rps:.2f}x |"
                     for r in results if r.op == op and r.name != "in-process")
    return "\n".join(lines)


def verdict(results: list[Result]) -> list[str]:
    out = []
    errors = sum(sum(r.errors.values()) for r in results)
    out.append(f"zero errors: {'MET' if errors == 0 else f'NOT MET ({errors} errors)'}")
    for r in results:
        if r.op == "GET" and r.name != "in-process":
            met = r.pct(99) < GOAL_P99_MS
            out.append(f"GET p99 < {GOAL_P99_MS:.0f} ms with {r.name}: "
                       f"{'MET' if met else 'NOT MET'} ({r.pct(99):.1f} ms)")
    for op in ("GET", "POST"):
        py = next((r for r in results if r.op == op and r.name == "http (httpx)"), None)
        wrk = next((r for r in results if r.op == op and r.name == "http (wrk)"), None)
        if py is None:
            continue
        line = (f"{op}: httpx generator {py.cpu['generator']:.2f} cores, server process "
                f"{py.cpu['server']:.2f} cores (one Python process: about 1 core at most)")
        if wrk is not None:
            gain = wrk.rps / py.rps - 1 if py.rps else float("nan")
            bound = ("the server bounds the result, not the generator" if gain < 0.15
                     else "the Python generator costs throughput: wrk is the better measure")
            line += f"; wrk {wrk.rps:,.0f} vs httpx {py.rps:,.0f} req/s ({gain:+.0%}): {bound}"
        out.append(line)
    busy = [r.cpu["other"] for r in results]
    if busy and max(busy) > 0.2:
        out.append(f"other work on the machine used {min(busy):.2f}-{max(busy):.2f} cores "
                   "during the runs: the figures are pessimistic for an idle machine")
    return out


# ---------------------------------------------------------------------------- profile
def profile_server(world: World, server: Server, plan: Plan, out_dir: Path) -> None:
    """Extra runs under py-spy (not the measured ones: sampling slows the server)."""
    spy = shutil.which("py-spy") or str(VENV_BIN / "py-spy")
    if not Path(spy).exists():
        print("profile: py-spy not found (pip install py-spy)")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for op in ("GET", "POST"):
        lanes = world.lanes.take(plan.clients) if op == "POST" else None
        raw = out_dir / f"server_{op.lower()}.txt"
        secs = max(int(plan.seconds), 5)
        spying = subprocess.Popen([spy, "record", "-p", str(server.pid), "-r", "200", "-d",
                                   str(secs), "--gil", "-f", "raw", "-o", str(raw)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        if plan.wrk:
            run_wrk(world, server, plan.clients, secs - 1, lanes)
        else:
            headers = {"Authorization": f"Bearer {world.token}"}
            clients = [httpx.Client(base_url=server.base, headers=headers)
                       for _ in range(plan.clients)]
            closed_loop(plan.clients, secs - 1, http_makers(world, server, clients, lanes),
                        200 if op == "GET" else 201)
            for c in clients:
                c.close()
        spying.wait()
        print(f"\nprofile of the server under {op} (py-spy --gil, {secs} s, "
              f"samples holding the GIL): {raw}")
        print(summarise_collapsed(raw))


def summarise_collapsed(path: Path, top: int = 25) -> str:
    """Own time and inclusive time per function from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return "  (no profile written)"
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        own[_short(frames[-1])] += n
        for f in set(map(_short, frames)):
            incl[f] += n
    if not total:
        return "  (empty profile)"
    rows = ["  own%   function (file:line)"]
    rows += [f"  {n / total * 100:5.1f}  {f}" for f, n in own.most_common(top)]
    rows += ["  incl%  function"]
    keep = [(f, n) for f, n in incl.most_common(200)
            if any(k in f for k in ("neonpro", "starlette", "fastapi", "uvicorn", "h11",
                                    "sqlalchemy", "psycopg", "pydantic", "anyio", "crypto",
                                    "jwt", "structlog", "prometheus", "json"))][:top]
    rows += [f"  {n / total * 100:5.1f}  {f}" for f, n in keep]
    return "\n".join(rows)


def _short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)" with the package dir kept
    m = re.match(r"(.*) \((.*?):?(\d*)\)$", frame)
    if not m:
        return frame
    func, path = m.group(1), m.group(2)
    parts = Path(path).parts
    where = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{func} ({where})"


# ------------------------------------------------------------------------------- main
def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({model}), {mem:.0f} GiB, {platform.platform()}"


def versions() -> str:
    import fastapi
    import sqlalchemy
    import starlette
    import uvicorn

    http_impl = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return (f"python {platform.python_version()}, uvicorn {uvicorn.__version__} "
            f"({http_impl}, {loop} in this venv), fastapi {fastapi.__version__}, "
            f"starlette {starlette.__version__}, sqlalchemy {sqlalchemy.__version__}, "
            f"httpx {httpx.__version__}")


def wrk_version() -> str | None:
    if shutil.which("wrk") is None:
        return None
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else "wrk"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per run (default 30)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (20)")
    parser.add_argument("--quick", action="store_true", help="5 s per run")
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--environment", default="production",
                        choices=[e.value for e in Environment],
                        help="settings profile of server and in-process container (pool "
                             "size: production 20+10, development 5+5, test 4+4)")
    parser.add_argument("--no-wrk", action="store_true", help="skip the wrk runs")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="compare with bench/baseline_app.py, interleaved (default on)")
    parser.add_argument("--baseline-only", action="store_true",
                        help="only the baseline comparison (skip the neonpro-only runs)")
    parser.add_argument("--workers", type=int, default=1,
                        help="neonpro serve worker processes (default 1, like the baseline)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the baseline comparison (default 3)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds (default 3; 1 quick)")
    parser.add_argument("--server-pythonpath", default=None,
                        help="prepend to the server's PYTHONPATH (e.g. a directory holding "
                             "httptools/uvloop, to try them without touching the venv)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="after the measured runs, profile the server with py-spy "
                             "under GET and POST and write collapsed stacks to DIR")
    parser.add_argument("--url", default=_setup.DEFAULT_ADMIN_URL,
                        help="admin URL, only used to create and drop the scratch database")
    parser.add_argument("--keep", action="store_true", help="do not drop the scratch database")
    args = parser.parse_args(argv)
    global SERVER_WORKERS  # noqa: PLW0603  (read where the server command is built)
    SERVER_WORKERS = args.workers
    if args.quick:
        args.seconds = 5.0
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    has_wrk = wrk_version() if not args.no_wrk else None
    plan = Plan(args.clients, args.seconds, warmup, has_wrk is not None)

    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/api.py",
                                                   *(sys.argv[1:] if argv is None else argv)])
    print(f"$ {command}")
    print(f"neonpro HTTP API benchmark - {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"machine: {machine()}")
    print(f"{versions()}; load generator: httpx threads"
          + (f" and {has_wrk}" if has_wrk else " (wrk not installed or --no-wrk)"))
    load1 = os.getloadavg()
    print(f"load average before: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    print(f"{args.clients} clients, {args.seconds:g} s per run ({warmup:g} s warm-up for "
          f"the Python runs), environment {args.environment}, {args.patients} patients")
    print("NOTE: load generator, API server and PostgreSQL share this machine's "
          f"{os.cpu_count()} cores; the CPU columns show who used them.")
    # bench/_baseline.py imports this module as "api": the same one, not a second copy
    sys.modules.setdefault("api", sys.modules[__name__])
    import _baseline

    if args.baseline_only and not args.baseline:
        parser.error("--baseline-only needs the baseline")
    alone = not args.baseline_only
    lanes_needed = args.clients * (3 + (1 if args.profile else 0)) if alone else 0
    if args.baseline:
        lanes_needed += _baseline.lanes_needed(args.clients, args.rounds, plan.wrk)
    url = _setup.create_scratch_database(args.url)
    workdir = Path(tempfile.mkdtemp(prefix="neonpro_bench_api_"))
    server: Server | None = None
    box: Container | None = None
    try:
        t0 = time.perf_counter()
        world = build_world(args, url, workdir, lanes_needed)
        box = world.container
        print(f"setup: {world.dbname}, {len(world.patients)} patients, {lanes_needed} "
              f"professionals in {time.perf_counter() - t0:.1f} s")
        server = Server(world, args.server_pythonpath)
        ready = server.wait_ready()
        print(f"server: {' '.join(server.command[1:])} (pid {server.pid}), ready in "
              f"{ready:.1f} s")
        if alone:
            box.start_sealer()  # the in-process side does the server's background work too
            results = run_all(world, server, plan, box)
            print()
            print(table(results))
            print()
            print(ratios(results))
            print()
            for line in verdict(results):
                print(line)
        if args.baseline:
            box.close()  # its pools and sealer: only the two servers' work from here on
            _baseline.run_comparison(world, server, plan, args.rounds, args.server_pythonpath)
        load2 = os.getloadavg()
        print(f"load average after: {load2[0]:.2f} {load2[1]:.2f} {load2[2]:.2f}")
        if args.profile:
            profile_server(world, server, plan, args.profile)
        tail = server.tail()
        if "Traceback" in tail or '"level": "error"' in tail:
            print(f"\nserver log (tail):\n{tail}")
    finally:
        if server is not None:
            server.stop()
        if box is not None:
            box.close()
        if args.keep:
            print(f"kept {url} (work dir {workdir})")
        else:
            _setup.drop_scratch_database(args.url, url)
            shutil.rmtree(workdir, ignore_errors=True)
            print("scratch database dropped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
