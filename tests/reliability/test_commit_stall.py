"""Deadlines that hold at COMMIT, and readiness that sees commits stall.

A private cluster is told to wait for a synchronous standby that never connects: every
COMMIT then waits forever (``statement_timeout`` does not cut it: the server stops the
statement timer before it commits). Writers and audited reads must be answered ``503
commit_outcome_unknown`` at their deadline, not hang; ``/health/ready`` must turn 503 while
commits stall and 200 again once they flow; the worker threads and connections must come
back (the COMMITs are cut, not abandoned). A retry with the Idempotency-Key then answers
what really happened, exactly once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import psycopg
import pytest

from neonpro.bootstrap import Container
from neonpro.entrypoints.api.app import create_app
from tests.reliability.harness import (
    PrivateCluster,
    ThreadServer,
    World,
    build_world,
    restart_world,
    say,
)

DEADLINE_S = 3.0
READY_BOUND_MS = 1000


def _stall(cluster: PrivateCluster, standby: str | None) -> None:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        if standby is None:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
        else:
            conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{standby}'")
        conn.execute("SELECT pg_reload_conf()")
    time.sleep(2.0)  # every backend reads the new configuration (slow on a loaded machine)


@pytest.fixture
def served(cluster: PrivateCluster) -> Iterator[tuple[Container, ThreadServer, World]]:
    box, _url = restart_world(cluster, request_timeout_s=DEADLINE_S, pool_size=4,
                              max_overflow=4, readiness_commit_timeout_ms=READY_BOUND_MS)
    server = ThreadServer(create_app(box))
    try:
        yield box, server, build_world(box, patients=6, lanes=2)
    finally:
        _stall(cluster, None)
        server.stop()
        box.close()


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response | None, float]:
    t0 = time.monotonic()
    try:
        return call(), time.monotonic() - t0
    except httpx.TimeoutException:
        return None, time.monotonic() - t0


def _booking(world: World, minutes: int) -> dict[str, str]:
    start = world.lanes[0].first + timedelta(days=3, minutes=minutes)
    return {"patient_id": str(world.patients[0]),
            "professional_id": str(world.lanes[0].professional_id),
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(minutes=30)).isoformat()}


def _count(cluster: PrivateCluster, body: dict[str, str]) -> int:
    with psycopg.connect(cluster.url("neonpro"), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM appointments WHERE professional_id = %s "
                           "AND start_time = %s", (body["professional_id"],
                                                   body["start_time"])).fetchone()
    return int(row[0]) if row else -1


def _problem(answer: httpx.Response | None) -> str:
    assert answer is not None
    assert answer.status_code == 503, answer.text
    assert answer.headers["retry-after"].isdigit()
    return str(answer.json()["type"]).rsplit("/", 1)[-1]


def test_a_stalled_commit_is_answered_at_the_deadline_and_readiness_turns_red(
        cluster: PrivateCluster, served: tuple[Container, ThreadServer, World]) -> None:
    box, server, world = served
    key = str(uuid.uuid4())
    plain, keyed = _booking(world, 0), _booking(world, 30)
    with httpx.Client(base_url=server.base, headers=world.headers, timeout=20) as client:
        assert client.get("/health/ready").status_code == 200
        _stall(cluster, "a_standby_that_never_connects")
        with ThreadPoolExecutor(4) as pool:
            calls = [pool.submit(_timed, call) for call in (
                lambda: client.post("/appointments", json=plain),
                lambda: client.post("/appointments", json=keyed,
                                    headers={"Idempotency-Key": key}),
                lambda: client.get(f"/patients/{world.patients[1]}"),
                lambda: client.get("/health/details"))]  # loopback: an operator
            (booked, booked_s), (claimed, claimed_s), (seen, seen_s), (health, health_s) = (
                c.result() for c in calls)
        say(f"\nstalled commits: booking {_problem(booked)} in {booked_s:.2f} s, keyed "
            f"booking {_problem(claimed)} in {claimed_s:.2f} s, audited read {_problem(seen)} "
            f"in {seen_s:.2f} s, readiness {health and health.status_code} in {health_s:.2f} s")
        # nobody waits past the deadline (plus scheduling slack on a busy machine)
        assert max(booked_s, claimed_s, seen_s) < DEADLINE_S + 2
        assert health_s < READY_BOUND_MS / 1000 + 2
        # the commits had begun: their outcome is not known (they commit locally when cut)
        assert _problem(booked) == "commit_outcome_unknown"
        assert _problem(seen) == "commit_outcome_unknown"
        # the keyed booking stalled in claiming its key: its work never began
        assert _problem(claimed) in {"request_timeout", "commit_outcome_unknown"}
        assert health is not None
        assert health.status_code == 503
        assert health.json()["checks"]["commits"]["ok"] is False
        # the cut COMMITs give their threads and connections back
        back = time.monotonic() + 2 * DEADLINE_S + 4
        while next(iter(box.database.pool_stats().values())).checked_out:
            assert time.monotonic() < back, "connections stuck in stalled COMMITs"
            time.sleep(0.2)
        still = client.get("/health/ready")  # still stalled: strangers see not ready
        assert (still.status_code, still.json()) == (503, {"status": "not_ready"})
        _stall(cluster, None)
        ready = time.monotonic() + 10
        while client.get("/health/ready").status_code != 200:
            assert time.monotonic() < ready, "readiness did not come back"
            time.sleep(0.2)
        # the unknown booking had committed locally when its wait was cut
        assert _count(cluster, plain) == 1
        # the keyed one, retried with its key until it is decided, is booked exactly once
        decided = time.monotonic() + 3 * DEADLINE_S + 5
        while (again := client.post("/appointments", json=keyed,
                                    headers={"Idempotency-Key": key})).status_code == 409:
            assert again.json()["type"].endswith("/idempotency_key_in_flight"), again.text
            assert time.monotonic() < decided, "the key stayed in flight"
            time.sleep(float(again.headers["retry-after"]))
        assert again.status_code == 201, again.text
        replay = client.post("/appointments", json=keyed, headers={"Idempotency-Key": key})
        assert replay.status_code == 201
        assert replay.headers.get("idempotent-replayed") == "true"
        assert replay.json()["id"] == again.json()["id"]
        assert _count(cluster, keyed) == 1
        later = _booking(world, 60)
        assert client.post("/appointments", json=later).status_code == 201
