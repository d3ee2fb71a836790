"""The change feed's fan-out, replay buffer and rate limit, without a database."""

from __future__ import annotations

import asyncio
import json
import uuid

from neonpro.adapters.feed import HEARTBEAT, RESYNC, ChangeFeed, FeedConfig, TokenBucket

A, B = uuid.uuid4(), uuid.uuid4()


def _note(clinic: uuid.UUID, n: int, **extra: object) -> str:
    return json.dumps({"clinic_id": str(clinic), "appointment_id": str(uuid.UUID(int=n)),
                       "event": "booked", "status": "scheduled", "version": 1, **extra})


def test_events_reach_only_their_clinic_and_carry_only_allowed_keys() -> None:
    async def run() -> None:
        feed = ChangeFeed("postgresql://unused", FeedConfig())
        sub_a, _, _ = feed.subscribe(A)
        sub_b, _, _ = feed.subscribe(B)
        feed.publish(_note(A, 1, full_name="Maria", cpf="11144477735"))
        got = await sub_a.next(0.1)
        assert not isinstance(got, str)
        assert got.data["appointment_id"] == str(uuid.UUID(int=1))
        assert "full_name" not in got.data
        assert "cpf" not in got.data
        assert await sub_b.next(0.05) == HEARTBEAT
        assert feed.publish("not json") is None
        assert feed.publish(json.dumps({"clinic_id": "x"})) is None

    asyncio.run(run())


def test_replay_after_last_event_id_and_resync_when_the_buffer_cannot_vouch() -> None:
    async def run() -> None:
        feed = ChangeFeed("postgresql://unused", FeedConfig(replay_events=3))
        events = [feed.publish(_note(A, i)) for i in range(5)]
        assert all(events)
        second = events[1]
        assert second is not None
        # the buffer keeps the last three (seq 3..5): from seq 2 on is complete
        _, backlog, complete = feed.subscribe(A, second.event_id(feed.boot))
        assert [e.seq for e in backlog] == [3, 4, 5]
        assert complete
        first = events[0]
        assert first is not None
        _, backlog, complete = feed.subscribe(A, first.event_id(feed.boot))
        assert [e.seq for e in backlog] == [3, 4, 5]
        assert not complete  # seq 2 was evicted
        for bad in ("other-2", f"{feed.boot}-99", "garbage", f"{feed.boot}-\u00b2",
                    f"{feed.boot}-\u0661"):  # digits to isdigit(), not to int()
            _, backlog, complete = feed.subscribe(A, bad)
            assert (backlog, complete) == ([], False)
        _, backlog, complete = feed.subscribe(B, second.event_id(feed.boot))
        assert (backlog, complete) == ([], False)  # nothing of clinic A leaks into B's replay

    asyncio.run(run())


def test_event_ids_count_each_clinics_own_changes() -> None:
    """A clinic's event ids say nothing of how many changes other clinics made."""
    feed = ChangeFeed("postgresql://unused", FeedConfig())
    for i in range(7):
        feed.publish(_note(A, i))
    first_of_b = feed.publish(_note(B, 1))
    assert first_of_b is not None
    assert first_of_b.event_id(feed.boot) == f"{feed.boot}-1"
    nxt = feed.publish(_note(A, 8))
    assert nxt is not None
    assert nxt.seq == 8
    _, backlog, complete = feed.subscribe(B, first_of_b.event_id(feed.boot))
    assert (backlog, complete) == ([], True)


def test_a_full_queue_turns_into_a_resync() -> None:
    async def run() -> None:
        feed = ChangeFeed("postgresql://unused", FeedConfig(queue_size=2))
        sub, _, _ = feed.subscribe(A)
        for i in range(3):
            feed.publish(_note(A, i))
        assert await sub.next(0.1) == RESYNC
        assert await sub.next(0.05) == HEARTBEAT
        feed.unsubscribe(sub)
        assert feed.subscriber_count(A) == 0

    asyncio.run(run())


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def run() -> None:
        bucket = TokenBucket(10, 10, clock=lambda: now[0])
        original = asyncio.sleep
        asyncio.sleep = fake_sleep  # type: ignore[assignment]
        try:
            for _ in range(30):
                await bucket.take()
        finally:
            asyncio.sleep = original
        assert len(slept) == 20
        assert abs(now[0] - 2.0) < 1e-6

    asyncio.run(run())
