"""The baseline comparison of bench/api.py (issue 18): neonpro beside bench/baseline_app.py.

Both servers run at once on the same scratch database, each its own uvicorn process on
a loopback port, with the same token (one signed-in admin's). Before anything is
measured, :func:`check_parity` asks both for the same patient (same id, same fields where
comparable: the baseline sends ciphertexts, neonpro the decrypted values) and has each
book one slot, then reads the database: both appointments are there with their audit
events, and each GET wrote its audit event. Then :func:`compare` warms both up and runs
``--rounds`` rounds; in each, for GET then POST, the same client (httpx threads, then
wrk if installed) drives neonpro and the baseline one after the other, the order swapped
every round (N B, B N, N B...), each run on booking lanes of its own. Reported per
operation, server and client: the medians over the rounds of req/s, p50, p99 and server
CPU ms/req (the serving process's CPU from /proc over the run, per successful request),
the errors summed; then neonpro / baseline ratios and the issue's goals.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import _setup
import api  # bench/api.py (registered under this name when run as a script)
import httpx
import psycopg

from neonpro.adapters.db.logins import login_url

GOAL_CPU_RATIO = 1.5  # neonpro's server CPU per request at most 1.5x the baseline's
GOAL_RPS_RATIO = 2 / 3  # neonpro's throughput at least two thirds of the baseline's
APP = Path(__file__).resolve().parent / "baseline_app.py"
SERVERS = ("neonpro", "baseline")


class BaselineServer:
    """bench/baseline_app.py as a subprocess, like :class:`api.Server`."""

    def __init__(self, world: api.World, extra_pythonpath: str | None) -> None:
        self.port = api.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = world.workdir / "baseline.log"
        settings = world.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEONPRO_", "BASELINE_"))}
        env.update(
            BASELINE_APP_URL=_setup.libpq_url(login_url(world.url, _setup.ROLES.app)),
            BASELINE_SERVICE_URL=_setup.libpq_url(login_url(world.url, _setup.ROLES.service)),
            BASELINE_JWT_SECRET=settings.jwt_secret.get_secret_value(),  # type: ignore[union-attr]
            BASELINE_JWT_ISSUER=settings.jwt_issuer,
            BASELINE_POOL_SIZE=str(settings.pool_setting("pool_size")),
            BASELINE_POOL_OVERFLOW=str(settings.pool_setting("max_overflow")),
        )
        if extra_pythonpath:
            env["PYTHONPATH"] = extra_pythonpath + os.pathsep + env.get("PYTHONPATH", "")
        self.command = [sys.executable, str(APP), "--port", str(self.port)]
        self._log = self.log_path.open("wb")  # closed in stop()
        self.proc = subprocess.Popen(self.command, env=env, cwd=world.workdir,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    wait_ready = api.Server.wait_ready
    tail = api.Server.tail
    stop = api.Server.stop


# ---------------------------------------------------------------------------- parity
def _norm(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def _differences(a: dict[str, Any], b: dict[str, Any], skip: set[str]) -> tuple[int, list[str]]:
    common = sorted((set(a) & set(b)) - skip)
    bad = [f"{k}: {a[k]!r} != {b[k]!r}" for k in common if _norm(a[k]) != _norm(b[k])]
    return len(common), bad


def check_parity(world: api.World, servers: dict[str, Any]) -> list[str]:
    """Both servers answer the same patient alike and their bookings land in the database
    with their audit events; returns the problems found (none: the same work)."""
    problems: list[str] = []
    headers = {"Authorization": f"Bearer {world.token}"}
    patient = world.patients[0]
    service_url = _setup.libpq_url(login_url(world.url, _setup.ROLES.service))
    views = ("SELECT count(*) FROM audit_events WHERE action = 'VIEW' "
             "AND resource_type = 'patient' AND resource_id = %s")
    with psycopg.connect(service_url, autocommit=True) as db:
        before = db.execute(views, (str(patient),)).fetchone()[0]  # type: ignore[index]
        got: dict[str, dict[str, Any]] = {}
        booked: dict[str, dict[str, Any]] = {}
        lanes = world.lanes.take(len(servers))
        for (name, server), lane in zip(servers.items(), lanes, strict=True):
            with httpx.Client(base_url=server.base, headers=headers, timeout=30) as client:
                r = client.get(f"/patients/{patient}")
                if r.status_code != 200:
                    problems.append(f"{name} GET: {r.status_code} {r.text[:200]}")
                    continue
                got[name] = r.json()
                body = {**api.booking_body(world, lane), "patient_id": str(patient)}
                r = client.post("/appointments", json=body)
                if r.status_code != 201:
                    problems.append(f"{name} POST: {r.status_code} {r.text[:200]}")
                    continue
                booked[name] = r.json()
        if len(got) == 2:
            neon, base = got["neonpro"], got["baseline"]
            if neon.get("id") != str(patient) or base.get("id") != str(patient):
                problems.append(f"GET ids differ: {neon.get('id')} / {base.get('id')}")
            n, bad = _differences(neon, base, set())
            problems += [f"GET field {d}" for d in bad]
            print(f"parity: GET /patients/{{id}}: same id, {n} fields compared, "
                  f"{len(bad)} differ; neonpro's {len(set(neon) - set(base))} decrypted or "
                  f"derived fields against the baseline's "
                  f"{len(set(base) - set(neon))} ciphertexts (base64)")
        after = db.execute(views, (str(patient),)).fetchone()[0]  # type: ignore[index]
        if after - before != len(got):
            problems.append(f"GET audit events: {after - before} written for {len(got)} reads")
        if len(booked) == 2:
            skip = {"id", "professional_id", "start_time", "end_time", "created_at",
                    "updated_at"}
            n, bad = _differences(booked["neonpro"], booked["baseline"], skip)
            problems += [f"POST field {d}" for d in bad]
            ids = [uuid.UUID(b["id"]) for b in booked.values()]
            rows = db.execute("SELECT a.id, (SELECT count(*) FROM audit_events e WHERE "
                              "e.resource_id = a.id::text) FROM appointments a "
                              "WHERE a.id = ANY(%s)", (ids,)).fetchall()
            found = {row[0]: row[1] for row in rows}
            for name, b in booked.items():
                events = found.get(uuid.UUID(b["id"]))
                if events is None:
                    problems.append(f"{name}'s booking is not in the database")
                elif events < 1:
                    problems.append(f"{name}'s booking has no audit event")
            print(f"parity: POST /appointments: both bookings in the database with their "
                  f"audit events ({', '.join(str(found.get(i)) for i in ids)}); {n} fields "
                  f"compared, {len(bad)} differ; GET audit events written: {after - before}")
    return problems


# --------------------------------------------------------------------------- running
@dataclass
class Run:
    round: int
    server: str
    result: api.Result


def _drained(world: api.World, limit_s: float = 120.0) -> None:
    """Wait until neonpro's background sealer has sealed every audit event written so far.

    Both servers' requests write audit events and neonpro's server seals them all in the
    background; without this wait, the sealing of one run's events landed in the next
    run's server CPU (GET after a booking run measured 2.6 ms/req against 1.9 in the
    same server before any booking run). A run's own events are sealed during it."""
    until = time.monotonic() + limit_s
    with psycopg.connect(world.url, autocommit=True) as conn:
        while conn.execute("SELECT EXISTS (SELECT 1 FROM audit_events WHERE seq IS NULL)"
                           ).fetchone() == (True,):
            if time.monotonic() > until:
                print(f"  (audit events still unsealed after {limit_s:.0f} s: measuring anyway)")
                return
            time.sleep(0.25)


def _one(world: api.World, name: str, server: Any, op: str, client: str, plan: api.Plan,
         clients: list[httpx.Client]) -> api.Result:
    _drained(world)
    meter = api.CpuMeter(world.dbname, server.pid)
    ok = 200 if op == "GET" else 201
    lanes = world.lanes.take(plan.clients) if op == "POST" else None
    stats = server if isinstance(server, api.Server) else None
    if client == "httpx":
        make = api.http_makers(world, server, clients, lanes)
        body: Callable[[], api.Result] = partial(api.closed_loop, plan.clients, plan.seconds,
                                                 make, ok)
        return api.measure(f"{name} httpx", op, meter, "self", body, stats)
    body = partial(api.run_wrk, world, server, plan.clients, plan.seconds, lanes)
    return api.measure(f"{name} wrk", op, meter, "children", body, stats)


def compare(world: api.World, servers: dict[str, Any], plan: api.Plan,
            rounds: int) -> list[Run]:
    headers = {"Authorization": f"Bearer {world.token}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pools = {name: [httpx.Client(base_url=s.base, headers=headers, timeout=30, limits=limits)
                    for _ in range(plan.clients)] for name, s in servers.items()}
    kinds = ["httpx"] + (["wrk"] if plan.wrk else [])
    runs: list[Run] = []
    try:
        for name, server in servers.items():  # warm-up: pools filled, statements prepared
            for op in ("GET", "POST"):
                lanes = world.lanes.take(plan.clients) if op == "POST" else None
                api.closed_loop(plan.clients, plan.warmup,
                                api.http_makers(world, server, pools[name], lanes),
                                200 if op == "GET" else 201)
        for k in range(1, rounds + 1):
            order = SERVERS if k % 2 else SERVERS[::-1]
            for op in ("GET", "POST"):
                for client in kinds:
                    for name in order:
                        r = _one(world, name, servers[name], op, client, plan, pools[name])
                        runs.append(Run(k, name, r))
                        print(f"  round {k} {op:4} {client:5} {name:8} {r.rps:7.0f} req/s  "
                              f"p50 {r.pct(50):6.1f}  p99 {r.pct(99):6.1f} ms  server CPU "
                              f"{api.server_cpu_ms(r):5.2f} ms/req  errors {r.error_text()}  "
                              f"(other {r.cpu['other']:.2f} cores)", flush=True)
    finally:
        for pool in pools.values():
            for c in pool:
                c.close()
    return runs


def lanes_needed(clients: int, rounds: int, wrk: bool) -> int:
    """Booking lanes: warm-up and every POST run of both servers, plus the parity check."""
    return clients * 2 * (1 + rounds * (2 if wrk else 1)) + 2


# --------------------------------------------------------------------------- report
@dataclass
class Summary:
    op: str
    client: str
    server: str
    rps: float
    p50: float
    p99: float
    cpu_ms: float
    errors: int
    requests: int


def summarise(runs: list[Run]) -> list[Summary]:
    out = []
    keys = dict.fromkeys((r.result.op, r.result.name.split()[1], r.server) for r in runs)
    for op, client, server in keys:
        mine = [r.result for r in runs if r.server == server and r.result.op == op
                and r.result.name.endswith(client)]
        out.append(Summary(op, client, server,
                           statistics.median(r.rps for r in mine),
                           statistics.median(r.pct(50) for r in mine),
                           statistics.median(r.pct(99) for r in mine),
                           statistics.median(api.server_cpu_ms(r) for r in mine),
                           sum(sum(r.errors.values()) for r in mine),
                           sum(r.total for r in mine)))
    return out


def _pair(rows: list[Summary], op: str, client: str) -> tuple[Summary, Summary] | None:
    found = {s.server: s for s in rows if s.op == op and s.client == client}
    if "neonpro" in found and "baseline" in found:
        return found["neonpro"], found["baseline"]
    return None


def report(runs: list[Run], rounds: int) -> list[str]:
    rows = summarise(runs)
    lines = [f"baseline comparison, medians over {rounds} rounds (errors: sum):", "",
             "| op | client | server | req/s | p50 ms | p99 ms | server CPU ms/req | errors "
             "| requests |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {s.op} | {s.client} | {s.server} | {s.rps:,.0f} | {s.p50:.1f} | {s.p99:.1f} "
              f"| {s.cpu_ms:.2f} | {s.errors} | {s.requests:,} |" for s in rows]
    lines += ["", "| op | client | CPU/req neonpro / baseline | req/s neonpro / baseline "
              "| p50 neonpro / baseline |", "|---|---|---:|---:|---:|"]
    verdicts = []
    for op in ("GET", "POST"):
        for client in ("httpx", "wrk"):
            pair = _pair(rows, op, client)
            if pair is None:
                continue
            neon, base = pair
            cpu, rps = neon.cpu_ms / base.cpu_ms, neon.rps / base.rps
            lines.append(f"| {op} | {client} | {cpu:.2f}x | {rps:.2f}x "
                         f"| {neon.p50 / base.p50:.2f}x |")
            what = "booking" if op == "POST" else "GET"
            verdicts.append(f"{what} ({client}) server CPU per request <= "
                            f"{GOAL_CPU_RATIO:g}x the baseline's: "
                            f"{'MET' if cpu <= GOAL_CPU_RATIO else 'NOT MET'} ({cpu:.2f}x)")
            verdicts.append(f"{what} ({client}) throughput >= 0.67x the baseline's: "
                            f"{'MET' if rps >= GOAL_RPS_RATIO else 'NOT MET'} ({rps:.2f}x)")
            if op == "GET":
                verdicts.append(f"GET ({client}) neonpro p99 < {api.GOAL_P99_MS:.0f} ms: "
                                f"{'MET' if neon.p99 < api.GOAL_P99_MS else 'NOT MET'} "
                                f"({neon.p99:.1f} ms; baseline {base.p99:.1f} ms)")
    for server in SERVERS:
        errors = sum(s.errors for s in rows if s.server == server)
        verdicts.append(f"{server} zero errors: "
                        f"{'MET' if errors == 0 else f'NOT MET ({errors} errors)'}")
    busy = [r.result.cpu["other"] for r in runs]
    if busy and max(busy) > 0.2:
        verdicts.append(f"other work on the machine used {min(busy):.2f}-{max(busy):.2f} "
                        "cores during the runs: not figures of record")
    return [*lines, "", *verdicts]


def run_comparison(world: api.World, neonpro: api.Server, plan: api.Plan, rounds: int,
                   extra_pythonpath: str | None) -> bool:
    """Start the baseline, check parity, run the rounds and print the report; False if the
    parity check found the two doing different work."""
    baseline = BaselineServer(world, extra_pythonpath)
    try:
        ready = baseline.wait_ready()
        print(f"\nbaseline: {' '.join(baseline.command[1:])} (pid {baseline.pid}), ready in "
              f"{ready:.1f} s")
        problems = check_parity(world, {"neonpro": neonpro, "baseline": baseline})
        for p in problems:
            print(f"PARITY PROBLEM: {p}")
        t0 = time.perf_counter()
        runs = compare(world, {"neonpro": neonpro, "baseline": baseline}, plan, rounds)
        print(f"({time.perf_counter() - t0:.0f} s)\n")
        for line in report(runs, rounds):
            print(line)
        print(f"parity (same work): {'OK' if not problems else 'NOT OK, see above'}")
        tail = baseline.tail()
        if "Traceback" in tail or "ERROR" in tail:
            print(f"\nbaseline log (tail):\n{tail}")
        return not problems
    finally:
        baseline.stop()
