"""Shared machinery of the reliability scenarios (tests/reliability and bench/reliability.py).

* :class:`PrivateCluster`: a PostgreSQL cluster of our own (initdb/pg_ctl from
  /usr/lib/postgresql, run as ``postgres`` when we are root) on a free loopback port, which
  the scenario may stop and start at will. The shared server on 5432 is never touched.
* :class:`ThreadServer` / :class:`ProcessServer`: the API under uvicorn, in a thread of this
  process or as ``neonpro serve`` in a subprocess (whose memory can be measured).
* :func:`build_world`: one clinic, patients and "lane" professionals through the services.
* :class:`Load`: closed-loop HTTP clients reading patients and booking appointments; every
  request's outcome is recorded, so :func:`check_bookings` can prove that each 2xx booking
  is in the database and each failed one left nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import uvicorn
from fastapi import FastAPI

from neonpro.adapters.db.audit import ChainReport, verify_chains
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.vocabulary import ClinicRole
from neonpro.services import catalog, clinics
from neonpro.services import patients as psvc
from tests.e2e.api_helpers import dev_token

SYSTEM = Actor(uuid.UUID(int=0x5E5_0000_0098), "system")
SLOT = timedelta(minutes=30)
SLOTS_PER_DAY = 24  # 06:00-18:00 clinic time
ZONE = ZoneInfo("America/Sao_Paulo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- cluster
def cluster_requirements() -> tuple[str, Path] | str:
    """(OS user, bin dir) to run a private cluster, or why it cannot be run here."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        return "no PostgreSQL server binaries under /usr/lib/postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, but there is no postgres account to run the cluster"
        return "postgres", bins[-1].parent
    return pwd.getpwuid(os.geteuid()).pw_name, bins[-1].parent


class PrivateCluster:
    """A throwaway cluster on a free port; ``stop()``/``start()`` are the fault."""

    def __init__(self, user: str, bin_dir: Path, max_connections: int = 60) -> None:
        self.user, self.bin_dir = user, bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="neonpro-reliability-", dir="/tmp"))
        self.base.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.base, user, user)
        self.pgdata, self.port = self.base / "data", free_port()
        self._as_owner(str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", user,
                       "--auth=trust", "--no-sync")
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.base}'\nfsync = off\n"
                       f"max_connections = {max_connections}\nshared_buffers = 32MB\n")
        self.running = False

    def _as_owner(self, *args: str) -> None:
        cmd = list(args) if os.geteuid() != 0 else ["runuser", "-u", self.user, "--", *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd="/")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        self._as_owner(str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60",
                       "-l", str(self.base / "server.log"), "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """``fast`` rolls back open transactions and closes every connection; ``immediate``
        is a crash (recovery on the next start)."""
        self._as_owner(str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-w", "-t", "60",
                       "-m", mode, "stop")
        self.running = False

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def processes(self) -> list[int]:
        """The postmaster and every process it started (children in /proc)."""
        top = self.postmaster_pid()
        if top is None:
            return []
        found = [top]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == top:
                    found.append(int(stat.parent.name))
        return found

    def crash(self, *, children: bool = False, wait_s: float = 30.0) -> None:
        """``kill -9`` the postmaster (a crash: the next start recovers from the WAL). Its
        processes notice and exit; with ``children`` they are killed at once too (as when
        the whole cluster dies); those still alive after ``wait_s`` are killed."""
        procs = self.processes()
        if not procs:
            raise RuntimeError("the cluster is not running")
        victims = procs if children else procs[:1]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        until = time.monotonic() + wait_s
        while (alive := [p for p in procs if Path(f"/proc/{p}").exists()
                         and not _zombie(p)]) and time.monotonic() < until:
            time.sleep(0.05)
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # a dead postmaster stays a zombie until init reaps it (a second or two here), and
        # PostgreSQL takes a lock file naming a live pid for a running server
        until = time.monotonic() + 10
        while Path(f"/proc/{procs[0]}").exists() and time.monotonic() < until:
            time.sleep(0.05)
        if _zombie(procs[0]):
            (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        self.running = False

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):  # also if started elsewhere
            self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------------------- servers
class ThreadServer:
    """uvicorn serving ``app`` from a thread of this process, on a free loopback port."""

    def __init__(self, app: FastAPI) -> None:
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", log_config=None,
            timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


class ProcessServer:
    """``neonpro serve --no-migrate`` in a subprocess (its memory is its own)."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = workdir / "server.log"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("NEONPRO_")}
        neonpro = Path(sys.executable).parent / "neonpro"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(neonpro), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"],
            env={**clean, **env}, cwd=workdir, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited: {self.tail()}")
                try:
                    if client.get("/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not ready: {self.tail()}")
                time.sleep(0.1)

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def tail(self, n: int = 20) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ------------------------------------------------------------------------------ world
@dataclass
class Lane:
    """One professional's calendar, walked forward one 30-minute slot at a time, so no two
    bookings of a run ever compete for a slot (a 409 would be a real error)."""

    professional_id: uuid.UUID
    first: datetime
    k: int = 0

    def next(self) -> tuple[datetime, datetime]:
        day, n = divmod(self.k, SLOTS_PER_DAY)
        self.k += 1
        start = self.first + timedelta(days=day) + n * SLOT
        return start, start + SLOT


@dataclass
class World:
    clinic: uuid.UUID
    headers: dict[str, str]
    patients: list[uuid.UUID]
    lanes: list[Lane]


LANE_HOURS: dict[str, Any] = {
    "work_start_time": dtime(0, 0), "work_end_time": dtime(23, 59), "can_work_weekends": True,
    "appointment_buffer_minutes": 0, "max_daily_appointments": 200,
}


def _cpf(n: int) -> str:
    base = [int(d) for d in f"{(n * 7919 + 123457) % 10**9:09d}"]
    for size in (9, 10):
        total = sum(d * w for d, w in zip(base, range(size + 1, 1, -1), strict=True))
        base.append(0 if total % 11 < 2 else 11 - total % 11)
    return "".join(map(str, base))


def build_world(box: Container, patients: int, lanes: int, days_ahead: int = 2) -> World:
    """A clinic with ``patients`` patients and ``lanes`` professionals who work every day."""
    clinic = clinics.create_clinic(box.service_uow(SYSTEM),
                                   ClinicCreate(name="Clínica Confiabilidade")).id
    admin = Actor(uuid.uuid4(), "admin")
    rng = random.Random(9)  # noqa: S311
    profs = [catalog.add_professional(box.uow(clinic, admin), ProfessionalCreate(
        full_name=f"Dra. Faixa {i:03d}", **LANE_HOURS)).id for i in range(lanes)]
    ids = [psvc.register_patient(box.uow(clinic, admin), PatientCreate(
        full_name=f"Paciente Teste {n:04d}", cpf=_cpf(n),
        birth_date=date(1950, 1, 1) + timedelta(days=rng.randrange(60 * 365)))).id
        for n in range(patients)]
    box.seal_audit()
    token = dev_token(box, clinic, ClinicRole.ADMIN.value)
    first_day = datetime.now(ZONE).date() + timedelta(days=days_ahead)
    first = datetime.combine(first_day, dtime(6), tzinfo=ZONE).astimezone(UTC)
    return World(clinic, {"Authorization": f"Bearer {token}"}, ids,
                 [Lane(p, first) for p in profs])


# ------------------------------------------------------------------------------- load
@dataclass
class Outcome:
    op: str  # "read" | "book"
    started: float  # monotonic
    seconds: float
    status: int  # 0: no HTTP answer (transport error or client timeout)
    problem: str | None = None
    retry_after: str | None = None
    problem_json: bool = False
    slot: tuple[uuid.UUID, datetime] | None = None
    created: uuid.UUID | None = None


@dataclass
class Load:
    """``clients`` closed-loop threads; client i books on lane i when ``write_share`` of its
    requests come up, else reads a random patient."""

    base: str
    world: World
    clients: int
    write_share: float = 0.5
    timeout_s: float = 30.0
    pause_s: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    stop_event: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        if len(self.world.lanes) < self.clients:
            raise RuntimeError("one booking lane per client is needed")
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> list[Outcome]:
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=self.timeout_s + 10)
        with self._lock:
            return list(self.outcomes)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def _client(self, i: int) -> None:
        rng = random.Random(i)  # noqa: S311
        lane = self.world.lanes[i]
        with httpx.Client(base_url=self.base, headers=self.world.headers,
                          timeout=self.timeout_s) as client:
            while not self.stop_event.is_set():
                if rng.random() < self.write_share:
                    outcome = self._book(client, lane, rng)
                else:
                    outcome = self._read(client, rng)
                with self._lock:
                    self.outcomes.append(outcome)
                if self.pause_s:
                    self.stop_event.wait(self.pause_s)

    def _call(self, client: httpx.Client, op: str, send: Callable[[], httpx.Response],
              ) -> tuple[Outcome, httpx.Response | None]:
        t0 = time.monotonic()
        try:
            response = send()
        except httpx.HTTPError:
            return Outcome(op, t0, time.monotonic() - t0, 0), None
        outcome = Outcome(op, t0, time.monotonic() - t0, response.status_code)
        if response.status_code >= 400:
            outcome.problem_json = response.headers.get("content-type", "").startswith(
                "application/problem+json")
            outcome.retry_after = response.headers.get("retry-after")
            try:
                outcome.problem = str(response.json().get("type", "")).rsplit("/", 1)[-1]
            except ValueError:
                outcome.problem = None
        return outcome, response

    def _read(self, client: httpx.Client, rng: random.Random) -> Outcome:
        patient = rng.choice(self.world.patients)
        outcome, _ = self._call(client, "read", lambda: client.get(f"/patients/{patient}"))
        return outcome

    def _book(self, client: httpx.Client, lane: Lane, rng: random.Random) -> Outcome:
        start, end = lane.next()
        body = {"patient_id": str(rng.choice(self.world.patients)),
                "professional_id": str(lane.professional_id),
                "start_time": start.isoformat(), "end_time": end.isoformat()}
        outcome, response = self._call(client, "book",
                                       lambda: client.post("/appointments", json=body))
        outcome.slot = (lane.professional_id, start)
        if response is not None and response.status_code == 201:
            outcome.created = uuid.UUID(response.json()["id"])
        return outcome


# ------------------------------------------------------------------------- invariants
@dataclass
class BookingCheck:
    confirmed: int  # 2xx bookings found in the database
    refused: int  # failed bookings whose slot is empty
    lost: list[str]  # a 2xx booking missing from the database
    kept: list[str]  # a failed booking that was written anyway

    @property
    def ok(self) -> bool:
        return not self.lost and not self.kept


def check_bookings(superuser_url: str, clinic: uuid.UUID, outcomes: list[Outcome],
                   ) -> BookingCheck:
    """Every 2xx booking is in the database; every other one left its slot empty."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:  # superuser: past RLS
        rows = conn.execute(
            "SELECT id, professional_id, start_time FROM appointments WHERE clinic_id = %s",
            (clinic,)).fetchall()
    by_id = {r[0] for r in rows}
    by_slot = {(r[1], r[2]) for r in rows}
    check = BookingCheck(0, 0, [], [])
    for o in outcomes:
        if o.op != "book" or o.slot is None:
            continue
        if 200 <= o.status < 300:
            if o.created in by_id:
                check.confirmed += 1
            else:
                check.lost.append(f"{o.created} ({o.status})")
        elif o.slot in by_slot:
            check.kept.append(f"{o.slot[0]} {o.slot[1].isoformat()} ({o.status} {o.problem})")
        else:
            check.refused += 1
    return check


def audit_ok(box: Container, clinic: uuid.UUID) -> tuple[bool, ChainReport]:
    """Seal what is pending, then verify the clinic's chain (no fork, gap or edit)."""
    box.seal_audit()
    reports = verify_chains(box.database, SYSTEM, box.keyring, clinic)
    report = next(r for r in reports if r.clinic_id == clinic and r.chain == "audit_events")
    return all(r.ok and r.unsealed == 0 for r in reports), report


def say(line: str) -> None:
    """A figure for docs/reliability.md (shown with ``pytest -s``)."""
    sys.stdout.write(line + "\n")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def kill_app_connections(superuser_url: str, dbname: str, share: float,
                         rng: random.Random) -> int:
    """pg_terminate_backend on ``share`` of the application's connections to ``dbname``
    (never another database's), at least one if there is any. Returns how many."""
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = "
            "'neonpro' AND pid <> pg_backend_pid()", (dbname,)).fetchall()]
        if not pids:
            return 0
        victims = rng.sample(pids, max(1, round(len(pids) * share)))
        for pid in victims:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return len(victims)


# --------------------------------------------------------------------------- restart
@dataclass
class RestartReport:
    outcomes: list[Outcome]
    windows: list[tuple[float, float]]  # (database down, database back), monotonic
    check: BookingCheck
    audit: bool
    seconds: float

    def during_outage(self) -> list[Outcome]:
        return [o for o in self.outcomes
                if any(down <= o.started + o.seconds and o.started <= up
                       for down, up in self.windows)]

    def resumed_after(self) -> list[float]:
        """Per restart: seconds from the database back to the first 2xx read and booking
        that both started after it (the later of the two)."""
        out = []
        for _down, up in self.windows:
            firsts = []
            for op in ("read", "book"):
                ok = [o.started + o.seconds for o in self.outcomes
                      if o.op == op and o.started >= up and 200 <= o.status < 300]
                firsts.append(min(ok) - up if ok else float("inf"))
            out.append(max(firsts))
        return out

    def failures_after(self, grace_s: float) -> list[Outcome]:
        """Requests that started ``grace_s`` after a restart (and before the next outage)
        and still failed."""
        bad = []
        for i, (_down, up) in enumerate(self.windows):
            end = self.windows[i + 1][0] if i + 1 < len(self.windows) else float("inf")
            bad += [o for o in self.outcomes
                    if up + grace_s <= o.started and o.started + o.seconds < end
                    and not 200 <= o.status < 300]
        return bad


def restart_scenario(cluster: PrivateCluster, box: Container, world: World, base: str, *,
                     clients: int, before_s: float, outage_s: float, after_s: float,
                     modes: tuple[str, ...] = ("fast",), timeout_s: float = 30.0,
                     ) -> RestartReport:
    """``clients`` clients book and read while the cluster is stopped (``modes``: fast
    shutdown, or immediate = crash) for ``outage_s`` and started again, once per mode."""
    load = Load(base, world, clients=clients, write_share=0.5, timeout_s=timeout_s)
    windows = []
    t0 = time.monotonic()
    load.start()
    try:
        time.sleep(before_s)
        for mode in modes:
            down = time.monotonic()
            cluster.stop(mode)
            time.sleep(outage_s)
            cluster.start()
            up = time.monotonic()
            windows.append((down, up))
            say(f"restart ({mode}): database down {up - down:.1f} s")
            time.sleep(after_s)
    finally:
        outcomes = load.stop()
    seconds = time.monotonic() - t0
    check = check_bookings(cluster.url("neonpro"), world.clinic, outcomes)
    audit, _report = audit_ok(box, world.clinic)
    return RestartReport(outcomes, windows, check, audit, seconds)


def restart_world(cluster: PrivateCluster, **overrides: Any) -> tuple[Container, str]:
    """Create and migrate database ``neonpro`` on the private cluster; a container on it."""
    from neonpro.adapters.crypto import KeyRing  # noqa: PLC0415
    from neonpro.adapters.db import migrate  # noqa: PLC0415
    from neonpro.adapters.db.security import Roles  # noqa: PLC0415
    from neonpro.config import Environment, Settings  # noqa: PLC0415

    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE neonpro")
    url = cluster.url("neonpro")
    migrate.upgrade(url, Roles())
    keys = KeyRing(keys={"k1": os.urandom(32)}, active_id="k1",
                   blind_index_key=os.urandom(32), audit_key=os.urandom(32))
    settings = Settings(environment=Environment.TEST, database_url=url,
                        jwt_secret="s" * 32, _env_file=None, **overrides)  # type: ignore[call-arg]
    return Container(settings, database_url=url, keyring=keys), url
