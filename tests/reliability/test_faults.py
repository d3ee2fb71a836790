"""Killed connections, an exhausted pool, slow queries and a lost COMMIT acknowledgement,
against the API over real HTTP (docs/reliability.md, scenarios 2 and 3)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError

from neonpro.adapters.db.deadline import COMMITTED, COMMITTING, RUNNING, Deadline
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.entrypoints.api.app import create_app
from tests.conftest import make_keyring, make_settings
from tests.reliability.harness import (
    Load,
    ThreadServer,
    World,
    audit_ok,
    build_world,
    check_bookings,
    kill_app_connections,
    say,
)

pytestmark = pytest.mark.slow


def _superuser(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Api:
    def __init__(self, url: str, **overrides: Any) -> None:
        self.url = url
        self.box = Container(make_settings(url, jwt_secret="r" * 32, **overrides),
                             database_url=url, keyring=make_keyring())
        self.box.start_sealer(interval=0.3)
        self.server = ThreadServer(create_app(self.box))
        self.base = self.server.base

    def close(self) -> None:
        self.server.stop()
        self.box.close()


@pytest.fixture(scope="module")
def api(own_database: str) -> Iterator[Api]:
    served = Api(own_database, pool_size=4, max_overflow=4, retry_attempts=4,
                 request_timeout_s=10)
    try:
        yield served
    finally:
        served.close()


@pytest.fixture(scope="module")
def world(api: Api) -> World:
    return build_world(api.box, patients=40, lanes=12)


def test_killed_connections_lose_nothing_and_reads_are_retried(
        api: Api, world: World) -> None:
    dbname = make_url(api.url).database
    assert dbname
    load = Load(api.base, World(world.clinic, world.headers, world.patients, world.lanes[:6]),
                clients=6, write_share=0.4, timeout_s=20)
    killed = 0
    rng = random.Random(2)  # noqa: S311
    load.start()
    try:
        time.sleep(0.5)
        until = time.monotonic() + 8
        while time.monotonic() < until:  # about 3 kills a second
            killed += kill_app_connections(_superuser(api.url), dbname, 0.5, rng)
            time.sleep(0.3)
        time.sleep(0.5)
    finally:
        outcomes = load.stop()
    reads = [o for o in outcomes if o.op == "read"]
    books = [o for o in outcomes if o.op == "book"]
    failed_reads = [(o.status, o.problem) for o in reads if o.status != 200]
    say(f"\nkilled {killed} connections; {len(reads)} reads, {len(books)} bookings, "
          f"booking answers {sorted({o.status for o in books})}")
    assert killed >= 10
    assert len(reads) >= 50
    assert len(books) >= 30
    # a read whose connection was killed is run again: the client never sees it
    assert failed_reads == []
    # a booking is a 201 that is in the database, or a 503 that left nothing behind
    assert {o.status for o in books} <= {201, 503}
    assert all(o.problem_json and o.retry_after for o in books if o.status == 503)
    check = check_bookings(_superuser(api.url), world.clinic, books)
    assert check.ok, (check.lost, check.kept)
    assert check.confirmed == sum(o.status == 201 for o in books)
    # the pool replaced every dead connection: a burst afterwards is served in full
    with httpx.Client(base_url=api.base, headers=world.headers, timeout=10) as client:
        statuses = [client.get(f"/patients/{p}").status_code for p in world.patients[:20]]
    assert statuses == [200] * 20
    [stats] = api.box.database.pool_stats().values()
    assert stats.checked_out == 0
    ok, report = audit_ok(api.box, world.clinic)
    assert ok, report


def _hold_professional(url: str, professional: uuid.UUID) -> psycopg.Connection[Any]:
    """Another session locks the professional's row: bookings for them wait on it."""
    conn = psycopg.connect(_superuser(url))
    conn.execute("SELECT 1 FROM professionals WHERE id = %s FOR UPDATE", (professional,))
    return conn


def _waiting_on_locks(url: str) -> int:
    with psycopg.connect(_superuser(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'neonpro' AND wait_event_type = 'Lock'").fetchone()
    return int(row[0]) if row else 0


def _booking(world: World, lane: int, minutes: int) -> dict[str, str]:
    start = world.lanes[lane].first + timedelta(days=20, minutes=minutes)
    return {"patient_id": str(world.patients[0]),
            "professional_id": str(world.lanes[lane].professional_id),
            "start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()}


def _slot_taken(url: str, body: dict[str, str]) -> bool:
    with psycopg.connect(_superuser(url), autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM appointments WHERE professional_id = %s AND start_time = %s",
            (body["professional_id"], datetime.fromisoformat(body["start_time"]))).fetchone() != (0,)


def _timed(fn: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    response = fn()
    return response, time.monotonic() - t0


def _assert_503(response: httpx.Response, kind: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["retry-after"].isdigit()
    assert response.json()["type"].endswith("/" + kind), response.text


def test_pool_exhaustion_and_statement_timeout_answer_503_while_health_stays_up(
        own_database: str, world: World) -> None:
    # a pool of 2 and no overflow, 1 s to get a connection, 2.5 s per statement
    api = Api(own_database, pool_size=2, max_overflow=0, pool_timeout_s=1,
              statement_timeout_ms=2500, request_timeout_s=20)
    held = _hold_professional(own_database, world.lanes[8].professional_id)
    try:
        bodies = [_booking(world, 8, 60 * i) for i in range(2)]
        with ThreadPoolExecutor(12) as pool, httpx.Client(
                base_url=api.base, headers=world.headers, timeout=30) as client:
            blocked = [pool.submit(_timed, lambda b=b: client.post("/appointments", json=b))
                       for b in bodies]
            deadline = time.monotonic() + 5
            while _waiting_on_locks(own_database) < 2:  # both pool connections now wait
                assert time.monotonic() < deadline, "the bookings never reached the lock"
                time.sleep(0.05)
            reads = [pool.submit(_timed, lambda p=p: client.get(f"/patients/{p}"))
                     for p in world.patients[:6]]
            health = []
            while not all(f.done() for f in blocked):
                health.append(_timed(lambda: client.get("/health/live")))
                time.sleep(0.1)
            for future in reads:
                response, seconds = future.result()
                _assert_503(response, "pool_exhausted")
                assert seconds < 3  # waited about the pool timeout (1 s), then answered
            for future in blocked:
                response, seconds = future.result()
                _assert_503(response, "query_timeout")
                assert 2 <= seconds < 6
        assert len(health) >= 10
        assert all(r.status_code == 200 for r, _ in health)
        say(f"\nhealth/live during exhaustion: {len(health)} checks, "
              f"max {max(s for _, s in health) * 1000:.0f} ms")
        assert max(s for _, s in health) < 0.5
        assert not any(_slot_taken(own_database, b) for b in bodies)
    finally:
        held.close()
        api.close()


def test_a_request_past_its_deadline_is_answered_and_rolled_back(
        own_database: str, world: World) -> None:
    # the statement timeout (60 s) is longer than the request's: the deadline bounds it
    api = Api(own_database, statement_timeout_ms=60_000, request_timeout_s=1.5)
    held = _hold_professional(own_database, world.lanes[9].professional_id)
    body = _booking(world, 9, 0)
    try:
        with httpx.Client(base_url=api.base, headers=world.headers, timeout=30) as client:
            response, seconds = _timed(lambda: client.post("/appointments", json=body))
            assert response.status_code == 503, response.text
            assert response.json()["type"].rsplit("/", 1)[1] in {"request_timeout",
                                                                "query_timeout"}
            assert response.headers["retry-after"].isdigit()
            assert 1.4 <= seconds < 3
            held.close()  # the lock goes away: nothing may be booked late
            time.sleep(1.0)
            assert not _slot_taken(own_database, body)
            assert client.get("/health/live").status_code == 200
            later = _booking(world, 9, 0)
            assert client.post("/appointments", json=later).status_code == 201
    finally:
        held.close()
        api.close()


class _LostAcknowledgement:
    """Stands in for the unit of work's transaction: COMMIT (or, for the other case, a
    ROLLBACK) really happens, then the connection "breaks" before the answer arrives."""

    def __init__(self, real: Any, *, committed: bool) -> None:
        self.real, self.committed = real, committed

    @property
    def is_active(self) -> bool:
        return bool(self.real.is_active)

    def commit(self) -> None:
        (self.real.commit if self.committed else self.real.rollback)()
        raise OperationalError("COMMIT", {}, psycopg.OperationalError(
            "server closed the connection unexpectedly"), connection_invalidated=True)

    def rollback(self) -> None:
        if self.real.is_active:
            self.real.rollback()


def test_a_lost_commit_acknowledgement_is_resolved_from_the_database(
        api: Api, world: World) -> None:
    """The connection breaks after COMMIT reached the server (the commit happened) or
    before (it did not): the unit of work asks pg_xact_status instead of guessing."""
    actor = Actor(uuid.uuid4(), "admin")
    results = {}
    for committed in (True, False):
        name = f"Perdido {committed} {uuid.uuid4().hex[:6]}"
        with api.box.uow(world.clinic, actor) as tx:
            row = tx.connection.execute(text(
                "INSERT INTO service_types (clinic_id, name, duration_minutes) "
                "VALUES (:c, :n, 30) RETURNING id"), {"c": world.clinic, "n": name}).scalar()
            tx._transaction = _LostAcknowledgement(  # type: ignore[assignment]
                tx._transaction, committed=committed)
            try:
                tx.commit()
                reported = "reported committed"
            except OperationalError:
                reported = "reported failed"
        with psycopg.connect(_superuser(api.url), autocommit=True) as conn:
            present = conn.execute("SELECT count(*) FROM service_types WHERE id = %s",
                                   (row,)).fetchone() == (1,)
        results[committed] = reported + (", present" if present else ", absent")
    assert results == {True: "reported committed, present", False: "reported failed, absent"}


def test_a_killed_transaction_is_reported_failed_and_absent(api: Api, world: World) -> None:
    box = api.box
    actor = Actor(uuid.uuid4(), "admin")
    name = f"Morto {uuid.uuid4().hex[:6]}"
    with pytest.raises(OperationalError), box.uow(world.clinic, actor) as tx:
        tx.connection.execute(text(
            "INSERT INTO service_types (clinic_id, name, duration_minutes) "
            "VALUES (:c, :n, 30)"), {"c": world.clinic, "n": name})
        pid = tx.connection.execute(text("SELECT pg_backend_pid()")).scalar()
        with psycopg.connect(_superuser(api.url), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        tx.commit()
    with psycopg.connect(_superuser(api.url), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM service_types WHERE name = %s",
                            (name,)).fetchone() == (0,)


def test_deadline_refuses_a_commit_once_answered() -> None:
    deadline = Deadline(0.01)
    time.sleep(0.02)
    assert deadline.remaining() < 0
    assert deadline.expire() == RUNNING  # answered request_timeout: nothing was written
    assert not deadline.begin_commit()
    other = Deadline(5)
    assert other.begin_commit()
    # a commit under way is answered commit_outcome_unknown, and nothing commits afterwards
    assert other.expire() == COMMITTING
    other.end_commit()
    assert not other.begin_commit()
    done = Deadline(5)
    assert done.begin_commit()
    done.end_commit()
    assert done.expire() == COMMITTED
