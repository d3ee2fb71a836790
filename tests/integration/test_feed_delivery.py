"""The appointment feed end to end through :class:`ChangeFeed`, on one server and on Citus
(``./dev test-citus`` runs this file too). On one server the trigger notifies; on Citus it
writes to an outbox the listener relays (revision 0020): a clinic's subscriber gets its
changes in order, another clinic's subscriber nothing, a rolled-back change nothing, and
the outbox is left empty. Adversaries: another clinic listening, a change that never
committed, the application's login reading the outbox."""

from __future__ import annotations

import asyncio
import time
import uuid

import psycopg
import pytest
from sqlalchemy import text

from neonpro.adapters.db.database import Database
from neonpro.adapters.db.housekeeping import prune_expired
from neonpro.adapters.feed import HEARTBEAT, ChangeFeed, FeedConfig, FeedEvent, Subscription
from tests.conftest import CITUS
from tests.factories import ACTOR, seed_clinic, seed_world
from tests.sessions import service_session


def _dsn(db: Database, kind: str) -> str:
    return db.url_for(kind).replace("postgresql+psycopg://", "postgresql://")


def _change(db: Database, clinic: uuid.UUID, appointment: uuid.UUID, status: str, *,
            commit: bool = True) -> None:
    with service_session(db, ACTOR) as session:
        session.execute(text("UPDATE appointments SET status = :s WHERE id = :a"),
                        {"s": status, "a": appointment})
        if not commit:
            session.rollback()


def _relayed(db: Database, seconds: float = 10.0) -> None:
    """On Citus, wait until the relay has taken what the outbox holds; elsewhere nothing."""
    if not CITUS:
        return
    deadline = time.monotonic() + seconds
    with psycopg.connect(_dsn(db, "service"), autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM neonpro_feed_outbox").fetchone() != (0,):
            if time.monotonic() > deadline:
                pytest.fail("the relay left the outbox full")
            time.sleep(0.05)
    time.sleep(0.2)  # the notifications are delivered at the relay's commit


async def _events(subscription: Subscription, seconds: float) -> list[FeedEvent]:
    got: list[FeedEvent] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        item = await subscription.next(left)
        if isinstance(item, FeedEvent):
            got.append(item)
        elif item != HEARTBEAT:
            pytest.fail(f"unexpected {item!r}")
    return got


def test_a_clinics_changes_reach_its_subscriber_only_and_in_order(db: Database) -> None:
    with service_session(db, ACTOR) as session:
        clinic, other = seed_clinic(session, "Feed A"), seed_clinic(session, "Feed B")
        appointment = seed_world(session, clinic)["appointments"]
        seed_world(session, other)

    async def scenario() -> tuple[list[FeedEvent], list[FeedEvent]]:
        feed = ChangeFeed(_dsn(db, "service"), FeedConfig(relay_seconds=0.05))
        assert await feed.start()
        try:
            assert await feed.listen_to(clinic)
            assert await feed.listen_to(other)
            await asyncio.to_thread(_relayed, db)  # the seed's bookings: before subscribing
            mine, _, _ = feed.subscribe(clinic)
            theirs, _, _ = feed.subscribe(other)
            await asyncio.to_thread(_change, db, clinic, appointment, "confirmed")
            await asyncio.to_thread(_change, db, clinic, appointment, "cancelled",
                                    commit=False)
            await asyncio.to_thread(_change, db, clinic, appointment, "in_progress")
            await asyncio.to_thread(_change, db, clinic, appointment, "completed")
            return await _events(mine, 2.0), await _events(theirs, 0.3)
        finally:
            await feed.stop()

    mine, theirs = asyncio.run(scenario())
    assert [(e.data["appointment_id"], e.data["event"]) for e in mine] == [
        (str(appointment), "confirmed"), (str(appointment), "started"),
        (str(appointment), "completed")]
    assert theirs == []
    if CITUS:  # everything relayed, nothing left behind
        with psycopg.connect(_dsn(db, "service")) as conn:
            assert conn.execute("SELECT count(*) FROM neonpro_feed_outbox").fetchone() == (0,)


@pytest.mark.skipif(not CITUS, reason="the outbox exists on Citus only (revision 0020)")
@pytest.mark.parametrize("statement", [
    "SELECT * FROM neonpro_feed_outbox",
    "DELETE FROM neonpro_feed_outbox",
    "UPDATE neonpro_feed_outbox SET payload = '{}'",
    # a forged event would be relayed on the channel of the clinic it names
    "INSERT INTO neonpro_feed_outbox (clinic_id, payload) "
    "VALUES ('00000000-0000-0000-0000-000000000001', '{}')",
])
def test_the_application_login_cannot_touch_the_outbox(db: Database, statement: str) -> None:
    with psycopg.connect(_dsn(db, "app")) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)  # type: ignore[arg-type]


@pytest.mark.skipif(not CITUS, reason="the outbox exists on Citus only (revision 0020)")
def test_events_no_relay_took_are_pruned_after_the_replay_window(db: Database) -> None:
    """No API process subscribed: the outbox would only grow. Housekeeping drops what is
    older than the replay window (a client that old resynchronises anyway)."""
    with service_session(db, ACTOR) as session:
        clinic = seed_clinic(session, "Feed nobody")
        appointment = seed_world(session, clinic)["appointments"]
    _change(db, clinic, appointment, "confirmed")
    with psycopg.connect(_dsn(db, "service"), autocommit=True) as conn:
        waiting = conn.execute("SELECT count(*) FROM neonpro_feed_outbox WHERE clinic_id = %s",
                               (clinic,)).fetchone()
        assert waiting is not None
        assert waiting[0] >= 1
        prune_expired(db)  # what other tests left long ago may go; this clinic's is fresh
        kept = conn.execute("SELECT count(*) FROM neonpro_feed_outbox WHERE clinic_id = %s",
                            (clinic,)).fetchone()
        assert kept == waiting
    with psycopg.connect(db.owner_url.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as owner:
        owner.execute("UPDATE neonpro_feed_outbox SET at = '2026-01-01' WHERE clinic_id = %s",
                      (clinic,))
    assert prune_expired(db).feed_outbox >= waiting[0]
