"""The realtime appointment feed over a real HTTP server (Server-Sent Events through uvicorn),
and the no-show risk in the API: scores and factors in appointment reads, the front desk's
high-risk list."""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import text

from neonpro.adapters.feed import PAYLOAD_KEYS, FeedConfig
from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.schemas.appointment import AppointmentCreate, Cancel, Reschedule
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.entrypoints.api.app import create_app
from neonpro.services import catalog, clinics, noshow, patients, scheduling
from tests.e2e.api_helpers import headers, is_problem

ACTOR = SystemActors.CLI
SP = ZoneInfo("America/Sao_Paulo")
PATIENT_NAME = "Joana Feedtest Pereira"
CONFIG = FeedConfig(heartbeat_seconds=0.3, events_per_second=10, burst=10)


@dataclass
class Live:
    app: FastAPI
    url: str


@pytest.fixture(scope="module")
def live(box: Container) -> Iterator[Live]:
    app = create_app(box)
    app.state.feed_config = CONFIG
    # log_config=None: uvicorn must not install its own logging handlers in the test
    # process (later tests check that its loggers go through ours)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="on", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Live(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comment: str | None = None
    at: float = 0.0

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.data)  # type: ignore[no-any-return]


@dataclass
class Reader:
    """An SSE client in a thread: every frame (events and comments) lands in ``frames``."""

    url: str
    headers: dict[str, str]
    frames: queue.Queue[Frame] = field(default_factory=queue.Queue)
    status: int | None = None
    raw: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._client = httpx.Client(timeout=httpx.Timeout(30, read=None))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as response:
                self.status = response.status_code
                frame = Frame()
                for line in response.iter_lines():
                    self.raw.append(line)
                    if line == "":
                        if frame.id or frame.event or frame.data or frame.comment:
                            frame.at = time.monotonic()
                            self.frames.put(frame)
                        frame = Frame()
                    elif line.startswith(":"):
                        frame.comment = line[1:].strip()
                    else:
                        key, _, value = line.partition(": ")
                        if key in ("id", "event", "data"):
                            setattr(frame, key, value)
        except (httpx.HTTPError, RuntimeError, ValueError):
            return

    def events(self, count: int, timeout: float = 10.0) -> list[Frame]:
        """The next ``count`` non-comment frames."""
        out: list[Frame] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            left = deadline - time.monotonic()
            assert left > 0, f"got {len(out)} of {count} events: {[f.data for f in out]}"
            try:
                frame = self.frames.get(timeout=left)
            except queue.Empty:
                continue
            if frame.comment is None:
                out.append(frame)
        return out

    def quiet_for(self, seconds: float) -> list[Frame]:
        """Non-comment frames that arrive within ``seconds`` (expected: none)."""
        got: list[Frame] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.frames.get(timeout=left)
            except queue.Empty:
                break
            if frame.comment is None:
                got.append(frame)
        return got

    def close(self) -> None:
        self._client.close()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class World:
    clinic: uuid.UUID
    prof: uuid.UUID
    patient: uuid.UUID


def _world(box: Container, name: str) -> World:
    clinic = clinics.create_clinic(box.service_uow(ACTOR), ClinicCreate(name=name)).id
    prof = catalog.add_professional(box.uow(clinic, ACTOR), ProfessionalCreate(
        full_name="Dra. Feed", can_work_weekends=True, appointment_buffer_minutes=0)).id
    patient = patients.register_patient(box.uow(clinic, ACTOR), PatientCreate(
        full_name=PATIENT_NAME)).id
    return World(clinic, prof, patient)


@pytest.fixture(scope="module")
def a(box: Container) -> World:
    return _world(box, "Clínica Feed A")


@pytest.fixture(scope="module")
def b(box: Container) -> World:
    return _world(box, "Clínica Feed B")


_slot = iter(range(10_000))


def _book(box: Container, w: World, *, days: int | None = None) -> Any:
    """A booking on its own half hour, 2 days ahead unless ``days`` is given."""
    n = next(_slot)
    day = datetime.now(SP).date() + timedelta(days=days if days is not None else 2 + n // 16)
    start = datetime.combine(day, datetime.min.time(), tzinfo=SP) + timedelta(
        hours=9, minutes=30 * (n % 16))
    return scheduling.book_appointment(box.uow(w.clinic, ACTOR), AppointmentCreate(
        patient_id=w.patient, professional_id=w.prof, start_time=start,
        end_time=start + timedelta(minutes=30)))


def _subscribe(live: Live, box: Container, w: World, last_event_id: str | None = None,
               *, token: dict[str, str] | None = None) -> Reader:
    # by identity, not by count: a reader closed just before may leave the server's set
    # while this one joins it, and the count would stand still
    before = _subscriptions(live, w)
    extra = {"Last-Event-ID": last_event_id} if last_event_id else {}
    reader = Reader(f"{live.url}/feed/appointments",
                    {**(token or headers(box, w.clinic, "receptionist")), **extra})
    deadline = time.monotonic() + 10
    while not _subscriptions(live, w) - before:
        assert time.monotonic() < deadline, f"no subscription (status {reader.status})"
        time.sleep(0.02)
    return reader


def _subscriptions(live: Live, w: World) -> set[object]:
    """The server's subscription objects of the clinic (held, so none is recycled)."""
    feed = getattr(live.app.state, "feed", None)
    clinic = None if feed is None else feed._clinics.get(w.clinic)
    return set() if clinic is None else set(clinic.subscribers)


def _subscribers(live: Live, w: World) -> int:
    feed = getattr(live.app.state, "feed", None)
    return 0 if feed is None else feed.subscriber_count(w.clinic)


def test_a_clinic_sees_its_own_changes_in_order_and_nothing_else(
    live: Live, box: Container, a: World, b: World
) -> None:
    reader_a, reader_b = _subscribe(live, box, a), _subscribe(live, box, b)
    try:
        booked = _book(box, a)
        confirmed = scheduling.confirm_appointment(box.uow(a.clinic, ACTOR), booked.id,
                                                   booked.version)
        checked = scheduling.check_in(box.uow(a.clinic, ACTOR), booked.id, confirmed.version)
        moved_to = booked.start_time + timedelta(days=1)
        moved = scheduling.reschedule_appointment(
            box.uow(a.clinic, ACTOR), booked.id,
            Reschedule(version=checked.version, start_time=moved_to,
                       end_time=moved_to + timedelta(minutes=30)))
        scheduling.cancel_appointment(box.uow(a.clinic, ACTOR), moved.id,
                                      Cancel(version=moved.version, reason="patient"))
        frames = reader_a.events(5)
        changes = [(f.json["event"], f.json["appointment_id"], f.json["status"])
                   for f in frames]
        assert changes == [
            ("booked", str(booked.id), "scheduled"),
            ("confirmed", str(booked.id), "confirmed"),
            ("checked_in", str(booked.id), "confirmed"),
            ("rescheduled", str(moved.id), "scheduled"),
            ("cancelled", str(moved.id), "cancelled"),
        ]
        assert frames[3].json["rescheduled_from_id"] == str(booked.id)
        assert [f.json["version"] for f in frames] == [1, 2, 3, 1, 2]
        for f in frames:
            assert f.event == "appointment"
            assert f.id is not None
            assert set(f.json) == set(PAYLOAD_KEYS)
            assert "clinic_id" not in f.json
            assert PATIENT_NAME not in f.data
            assert f.json["patient_id"] == str(a.patient)
        seqs = [int(f.id.rsplit("-", 1)[1]) for f in frames if f.id]
        assert seqs == sorted(seqs)
        assert reader_b.quiet_for(0.5) == []  # clinic B saw none of clinic A's changes

        other = _book(box, b)
        [frame_b] = reader_b.events(1)
        assert frame_b.json["appointment_id"] == str(other.id)
        assert reader_a.quiet_for(0.5) == []
    finally:
        reader_a.close()
        reader_b.close()


def test_a_rolled_back_change_publishes_nothing(live: Live, box: Container, a: World) -> None:
    reader = _subscribe(live, box, a)
    try:
        n = next(_slot)
        start = datetime.now(UTC) + timedelta(days=40, minutes=30 * n)
        with box.uow(a.clinic, ACTOR) as tx:
            doomed = tx.appointments.add(AppointmentCreate(
                patient_id=a.patient, professional_id=a.prof, start_time=start,
                end_time=start + timedelta(minutes=30)), time_zone="America/Sao_Paulo")
            # leaving without commit() rolls back
        kept = _book(box, a)
        [frame] = reader.events(1)
        assert frame.json["appointment_id"] == str(kept.id)
        assert frame.json["appointment_id"] != str(doomed.id)
        assert reader.quiet_for(0.5) == []
        assert str(doomed.id) not in "\n".join(reader.raw)
    finally:
        reader.close()


def test_a_reconnecting_client_gets_what_it_missed(live: Live, box: Container,
                                                   a: World) -> None:
    reader = _subscribe(live, box, a)
    try:
        first = _book(box, a)
        [seen] = reader.events(1)
        assert seen.json["appointment_id"] == str(first.id)
    finally:
        reader.close()
    deadline = time.monotonic() + 5
    while _subscribers(live, a) and time.monotonic() < deadline:  # the server noticed
        time.sleep(0.05)
    missed = [_book(box, a), _book(box, a)]
    time.sleep(0.3)  # let the notifications reach the server's buffer
    again = _subscribe(live, box, a, last_event_id=seen.id)
    try:
        frames = again.events(2)
        assert [f.json["appointment_id"] for f in frames] == [str(m.id) for m in missed]
        assert all(f.event == "appointment" for f in frames)
        live_one = _book(box, a)
        [after] = again.events(1)
        assert after.json["appointment_id"] == str(live_one.id)
    finally:
        again.close()
    deadline = time.monotonic() + 5  # the server noticed (else the count below can stand still)
    while _subscribers(live, a) and time.monotonic() < deadline:
        time.sleep(0.05)

    # an id the server cannot vouch for (another boot): told to resynchronise
    stale = _subscribe(live, box, a, last_event_id="00000000-5")
    try:
        [frame] = stale.events(1)
        assert frame.event == "resync"
    finally:
        stale.close()


def test_idle_connections_get_heartbeats(live: Live, box: Container, a: World) -> None:
    reader = _subscribe(live, box, a)
    try:
        comments = []
        deadline = time.monotonic() + 3
        while len(comments) < 2 and time.monotonic() < deadline:
            try:
                frame = reader.frames.get(timeout=0.5)
            except queue.Empty:
                continue
            if frame.comment is not None:
                comments.append(frame.comment)
        assert comments == ["heartbeat", "heartbeat"]
        assert any(line.startswith("retry: ") for line in reader.raw)
    finally:
        reader.close()


def test_a_stream_ends_when_its_session_does(live: Live, box: Container, a: World) -> None:
    """A stream outlives the request that opened it: a signed-out token's stream ends at
    the next heartbeat, told why, and no event reaches it after."""
    token = headers(box, a.clinic, "receptionist")
    reader = _subscribe(live, box, a, token=token)
    try:
        httpx.post(f"{live.url}/auth/logout", headers=token, timeout=5).raise_for_status()
        deadline = time.monotonic() + 5
        ended = None
        while ended is None and time.monotonic() < deadline:
            try:
                frame = reader.frames.get(timeout=0.5)
            except queue.Empty:
                continue
            if frame.event == "session_ended":
                ended = frame
        assert ended is not None
        _book(box, a)
        with pytest.raises(queue.Empty):
            while True:
                assert reader.frames.get(timeout=1.0).event != "appointment"
    finally:
        reader.close()


def test_each_connection_is_limited_to_ten_events_a_second(
    live: Live, box: Container, a: World
) -> None:
    reader = _subscribe(live, box, a)
    try:
        with box.database.engine().connect() as conn, conn.begin():
            for i in range(30):  # what the trigger would send, 30 changes in one commit
                conn.execute(text("SELECT pg_notify(neonpro_feed_channel(:c), :p)"), {
                    "c": a.clinic, "p": json.dumps({"clinic_id": str(a.clinic), "appointment_id":
                                     str(uuid.uuid4()), "event": "booked",
                                     "status": "scheduled", "version": i + 1})})
        frames = reader.events(30, timeout=15)
        spread = frames[-1].at - frames[0].at
        # a burst of 10, then 10 per second: the last 20 take about two seconds
        assert spread > 1.6
        assert spread < 6
    finally:
        reader.close()


def test_the_feed_needs_a_token(live: Live) -> None:
    response = httpx.get(f"{live.url}/feed/appointments", timeout=10)
    is_problem(response, 401, "unauthenticated")


def test_risk_score_and_factors_in_reads_and_the_high_risk_list(
    live: Live, box: Container, a: World
) -> None:
    tomorrow = _book(box, a, days=1)
    result = noshow.score_upcoming(box.uow(a.clinic, ACTOR), days=3)
    assert result.scored >= 1
    token = headers(box, a.clinic, "receptionist")
    read = httpx.get(f"{live.url}/appointments/{tomorrow.id}", headers=token, timeout=10)
    assert read.status_code == 200, read.text
    body = read.json()
    assert isinstance(body["no_show_risk_score"], int)
    assert body["no_show_model_version"] == result.model.label
    assert isinstance(body["no_show_risk_factors"], list)
    assert body["no_show_predicted_at"] is not None
    assert body["version"] == tomorrow.version  # scoring did not bump it

    listed = httpx.get(f"{live.url}/noshow/high-risk", params={"min_score": 0},
                       headers=token, timeout=10)
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    mine = [r for r in rows if r["appointment_id"] == str(tomorrow.id)]
    assert len(mine) == 1
    assert mine[0]["score"] == body["no_show_risk_score"]
    assert mine[0]["model_version"] == result.model.label
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert PATIENT_NAME not in listed.text

    model = httpx.get(f"{live.url}/noshow/model", headers=token, timeout=10)
    assert model.status_code == 200
    assert model.json()["model_version"] == result.model.label

    is_problem(httpx.get(f"{live.url}/noshow/high-risk", params={"day": "amanhã"},
                         headers=token, timeout=10), 422, "validation_failed")
    for edge in ("9999-12-31", "0001-01-01"):  # no calendar overflow into a 500
        is_problem(httpx.get(f"{live.url}/noshow/high-risk", params={"day": edge},
                             headers=token, timeout=10), 422, "validation_failed")
    is_problem(httpx.get(f"{live.url}/noshow/high-risk", params={"min_score": 101},
                         headers=token, timeout=10), 422, "validation_failed")
    is_problem(httpx.get(f"{live.url}/noshow/high-risk",
                         headers=headers(box, a.clinic, "dpo"), timeout=10), 403, "forbidden")
