"""The crash loop (docs/reliability.md): clients book through the API while the postmaster of
a private cluster is killed with ``kill -9`` at random moments and restarted each time.

Each booking carries its own ``Idempotency-Key`` and is retried with it until it is decided,
as a careful client would: a 2xx (or ``request_already_applied``) acknowledges it; a 503,
a dropped connection or ``idempotency_key_in_flight`` says "ask again". Every answer is
recorded. Afterwards, as a superuser past row-level security:

* every acknowledged booking is in the database with its CREATE audit event (lost: 0);
* no slot holds two bookings (a retry never did the work twice);
* an undecided booking (still unknown when the run ended) holds at most one row;
* the clinic's audit chain verifies.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import psycopg

from neonpro.bootstrap import Container
from tests.reliability.harness import Lane, PrivateCluster, World, audit_ok, say

ASK_AGAIN = {"commit_outcome_unknown", "idempotency_key_in_flight", "database_unavailable",
             "request_timeout", "pool_exhausted", "query_timeout"}


@dataclass
class Booking:
    key: str
    slot: tuple[uuid.UUID, datetime]
    started: float
    answers: list[str] = field(default_factory=list)  # "201", "503 commit_outcome_unknown"...
    acknowledged: uuid.UUID | None = None
    acknowledged_at: float = 0.0
    refused: str | None = None

    @property
    def decided(self) -> bool:
        return self.acknowledged is not None or self.refused is not None


@dataclass
class CrashReport:
    bookings: list[Booking]
    kills: list[tuple[float, float]]  # (killed, restarted), monotonic
    reads: Counter[int]
    lost: list[str]
    doubled: list[str]
    audit: bool
    seconds: float

    @property
    def answers(self) -> Counter[str]:
        return Counter(a for b in self.bookings for a in b.answers)

    def recovery(self) -> list[float]:
        """Per kill: seconds from the restart to the first booking acknowledged after it."""
        out = []
        for _killed, up in self.kills:
            after = [b.acknowledged_at - up for b in self.bookings
                     if b.acknowledged is not None and b.acknowledged_at >= up]
            out.append(min(after) if after else float("inf"))
        return out

    def summary(self) -> str:
        acknowledged = sum(b.acknowledged is not None for b in self.bookings)
        undecided = sum(not b.decided for b in self.bookings)
        unknown = self.answers["503 commit_outcome_unknown"]
        recovery = self.recovery()
        return (f"crash loop: {len(self.kills)} kills in {self.seconds:.0f} s; bookings "
                f"attempted {len(self.bookings)}, acknowledged {acknowledged}, lost "
                f"{len(self.lost)}, doubled {len(self.doubled)}, undecided {undecided}; "
                f"requests {sum(len(b.answers) for b in self.bookings)}, answered "
                f"commit_outcome_unknown {unknown}; answers {dict(self.answers)}; reads "
                f"{dict(self.reads)}; recovered (first acknowledged booking after the "
                f"restart) in {', '.join(f'{r:.2f}' for r in recovery)} s; audit chain "
                f"{'verifies' if self.audit else 'BROKEN'}")


class KeyedClients:
    """``clients`` threads; client i books on lane i (retrying each booking with its key
    until it is decided) and reads a random patient between bookings."""

    def __init__(self, base: str, world: World, clients: int, timeout_s: float) -> None:
        self.base, self.world, self.clients, self.timeout_s = base, world, clients, timeout_s
        self.bookings: list[Booking] = []
        self.reads: Counter[int] = Counter()
        self.stop_event = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                         for i in range(clients)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self, settle_s: float) -> None:
        """Stop starting bookings; give the open ones ``settle_s`` to be decided."""
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=settle_s + self.timeout_s)

    def _client(self, i: int) -> None:
        rng = random.Random(i)  # noqa: S311
        lane: Lane = self.world.lanes[i]
        with httpx.Client(base_url=self.base, headers=self.world.headers,
                          timeout=self.timeout_s) as client:
            while not self.stop_event.is_set():
                start, end = lane.next()
                booking = Booking(str(uuid.uuid4()), (lane.professional_id, start),
                                  time.monotonic())
                with self._lock:
                    self.bookings.append(booking)
                body = {"patient_id": str(rng.choice(self.world.patients)),
                        "professional_id": str(lane.professional_id),
                        "start_time": start.isoformat(), "end_time": end.isoformat()}
                self._decide(client, booking, body)
                self._read(client, rng)

    def _decide(self, client: httpx.Client, booking: Booking, body: dict[str, str]) -> None:
        give_up = None
        while not booking.decided:
            if self.stop_event.is_set():  # settling: a bounded time to decide
                give_up = give_up or time.monotonic() + 30
                if time.monotonic() > give_up:
                    return
            try:
                answer = client.post("/appointments", json=body,
                                     headers={"Idempotency-Key": booking.key})
            except httpx.HTTPError:
                booking.answers.append("no answer")
                time.sleep(0.5)
                continue
            kind = _kind(answer)
            booking.answers.append(f"{answer.status_code} {kind}".strip())
            if answer.status_code == 201:
                booking.acknowledged = uuid.UUID(answer.json()["id"])
            elif kind == "request_already_applied":
                made = [r for r in answer.json()["resources"]
                        if r["type"] == "appointments" and r["action"] == "CREATE"]
                booking.acknowledged = uuid.UUID(made[0]["id"]) if made else None
                booking.refused = None if made else "applied, but nothing created"
            elif kind in ASK_AGAIN:
                time.sleep(float(answer.headers.get("retry-after", "1")) / 2)
                continue
            else:
                booking.refused = f"{answer.status_code} {kind}"
            booking.acknowledged_at = time.monotonic()

    def _read(self, client: httpx.Client, rng: random.Random) -> None:
        try:
            status = client.get(f"/patients/{rng.choice(self.world.patients)}").status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            self.reads[status] += 1


def _kind(answer: httpx.Response) -> str:
    if answer.status_code < 400 or not answer.headers.get("content-type", "").startswith(
            "application/problem+json"):
        return ""
    return str(answer.json().get("type", "")).rsplit("/", 1)[-1]


def tuned_for_speed(cluster: PrivateCluster) -> None:
    """``synchronous_commit = off`` on the whole cluster, as a DBA chasing latency might."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_commit = off")
        conn.execute("SELECT pg_reload_conf()")


def crash_loop(cluster: PrivateCluster, box: Container, world: World, base: str, *,
               clients: int, kills: int, gap_s: tuple[float, float], timeout_s: float,
               seed: int = 14) -> CrashReport:
    """``kills`` times: wait a random ``gap_s``, ``kill -9`` the postmaster, restart it."""
    rng = random.Random(seed)  # noqa: S311
    load = KeyedClients(base, world, clients, timeout_s)
    windows: list[tuple[float, float]] = []
    t0 = time.monotonic()
    load.start()
    try:
        for n in range(kills):
            time.sleep(rng.uniform(*gap_s))
            killed = time.monotonic()
            cluster.crash()
            cluster.start()
            windows.append((killed, time.monotonic()))
            say(f"kill {n + 1}: down {windows[-1][1] - killed:.1f} s")
        time.sleep(gap_s[0])
    finally:
        load.stop(settle_s=30)
    seconds = time.monotonic() - t0
    lost, doubled = _check(cluster, world, load.bookings)
    audit, _report = audit_ok(box, world.clinic)
    return CrashReport(load.bookings, windows, load.reads, lost, doubled, audit, seconds)


def _check(cluster: PrivateCluster, world: World,
           bookings: list[Booking]) -> tuple[list[str], list[str]]:
    with psycopg.connect(cluster.url("neonpro"), autocommit=True) as conn:  # past RLS
        rows = conn.execute(
            "SELECT a.id, a.professional_id, a.start_time, EXISTS (SELECT 1 FROM audit_events "
            "e WHERE e.clinic_id = a.clinic_id AND e.resource_type = 'appointments' "
            "AND e.action = 'CREATE' AND e.resource_id = a.id::text) FROM appointments a "
            "WHERE a.clinic_id = %s", (world.clinic,)).fetchall()
    audited = {r[0]: r[3] for r in rows}
    per_slot = Counter((r[1], r[2]) for r in rows)
    lost = [f"{b.acknowledged} ({', '.join(b.answers)})" for b in bookings
            if b.acknowledged is not None and not audited.get(b.acknowledged)]
    doubled = [f"{slot[0]} {slot[1].isoformat()}" for slot, n in per_slot.items() if n > 1]
    return lost, doubled
