"""Races over real HTTP (docs/reliability.md, scenario 4): 50 bookings of one slot at once,
20 updates of one patient from the same version at once; exactly one of each wins, the rest
get 409, and the clinic's audit chain has no fork and no gap afterwards."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from neonpro.bootstrap import Container
from neonpro.entrypoints.api.app import create_app
from tests.conftest import make_keyring, make_settings
from tests.reliability.harness import ThreadServer, World, audit_ok, build_world, say

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(own_database: str) -> Iterator[tuple[Container, ThreadServer, World]]:
    box = Container(make_settings(own_database, jwt_secret="q" * 32), database_url=own_database,
                    keyring=make_keyring())
    box.start_sealer(interval=0.3)
    server = ThreadServer(create_app(box))
    try:
        yield box, server, build_world(box, patients=3, lanes=2)
    finally:
        server.stop()
        box.close()


def _all_at_once(n: int, base: str, headers: dict[str, str],
                 call: Callable[[httpx.Client, int], httpx.Response]) -> list[httpx.Response]:
    """n clients, each with its own connection already open, released by one barrier."""
    barrier = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            client.get("/health/live")  # connect first, so the race is in the server
            barrier.wait(timeout=30)
            return call(client, i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def _problem_types(responses: list[httpx.Response]) -> Counter[str]:
    return Counter(r.json()["type"].rsplit("/", 1)[1] for r in responses
                   if r.headers.get("content-type", "").startswith("application/problem+json"))


def test_fifty_bookings_of_one_slot_one_wins(
        served: tuple[Container, ThreadServer, World], own_database: str) -> None:
    _box, server, world = served
    lane = world.lanes[0]
    start = lane.first + timedelta(days=3, hours=4)
    body = {"professional_id": str(lane.professional_id),
            "start_time": start.isoformat(), "end_time": (start + timedelta(minutes=30)).isoformat()}

    def book(client: httpx.Client, i: int) -> httpx.Response:
        return client.post("/appointments", json={
            **body, "patient_id": str(world.patients[i % len(world.patients)])})

    responses = _all_at_once(50, server.base, world.headers, book)
    statuses = Counter(r.status_code for r in responses)
    say(f"50 bookings of one slot: {dict(statuses)} {dict(_problem_types(responses))}")
    assert statuses == {201: 1, 409: 49}
    assert _problem_types(responses) == {"double_booking": 49}
    url = make_url(own_database).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT id FROM appointments WHERE professional_id = %s",
                            (lane.professional_id,)).fetchall()
    [winner] = [r for r in responses if r.status_code == 201]
    assert [str(r[0]) for r in rows] == [winner.json()["id"]]


def test_twenty_updates_from_one_version_one_wins(
        served: tuple[Container, ThreadServer, World], own_database: str) -> None:
    box, server, world = served
    patient = world.patients[1]
    with httpx.Client(base_url=server.base, headers=world.headers, timeout=30) as client:
        version = client.get(f"/patients/{patient}").json()["version"]

    def update(client: httpx.Client, i: int) -> httpx.Response:
        return client.patch(f"/patients/{patient}",
                            json={"version": version, "city": f"Cidade {i:02d}"})

    responses = _all_at_once(20, server.base, world.headers, update)
    statuses = Counter(r.status_code for r in responses)
    say(f"20 updates from version {version}: {dict(statuses)} "
        f"{dict(_problem_types(responses))}")
    assert statuses == {200: 1, 409: 19}
    assert _problem_types(responses) == {"stale_version": 19}
    [winner] = [r.json() for r in responses if r.status_code == 200]
    with httpx.Client(base_url=server.base, headers=world.headers, timeout=30) as client:
        now: dict[str, Any] = client.get(f"/patients/{patient}").json()
    assert now["version"] == version + 1
    assert now["city"] == winner["city"]

    # the chain: every event sealed exactly once, seq 1..n without a gap, each link
    # pointing at the one before it (no fork), and verify recomputes every hash
    ok, report = audit_ok(box, world.clinic)
    assert ok, report
    url = make_url(own_database).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT seq), min(seq), max(seq), "
            "count(DISTINCT coalesce(prev_hash, ''::bytea)), count(*) FILTER (WHERE seq IS NULL) "
            "FROM audit_events WHERE clinic_id = %s", (world.clinic,)).fetchone()
        broken = conn.execute(
            "SELECT count(*) FROM audit_events e JOIN audit_events p "
            "ON p.clinic_id = e.clinic_id AND p.seq = e.seq - 1 "
            "WHERE e.clinic_id = %s AND e.prev_hash IS DISTINCT FROM p.hash",
            (world.clinic,)).fetchone()
    assert row is not None
    total, distinct, first, last, prevs, unsealed = row
    say(f"audit chain: {total} events, seq {first}..{last}, verify ok")
    assert unsealed == 0
    assert total == distinct == last - first + 1 == prevs
    assert broken == (0,)
