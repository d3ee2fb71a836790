"""The appointment change feed: one LISTEN connection per process, fanned out per clinic.

The database publishes every appointment change on the clinic's own channel from a
trigger, inside the changing transaction (``feed_sql.py``): a rolled-back change publishes
nothing. The channel's name is an HMAC of the clinic id under a key only the owner can
read; the service login asks for it (``neonpro_feed_channel``), so this connection is a
service connection, whose statements the application login cannot see. This module holds
the only asynchronous database code of neonpro: a psycopg ``AsyncConnection`` in
autocommit mode that LISTENs to the channel of every clinic that has had a subscriber
since the process started (:meth:`ChangeFeed.listen_to`, before the subscription), hands
each notification to the subscribers of *its* clinic (the clinic id in the payload, which
must be the channel's; a subscriber is bound to the clinic of its token), and keeps a short
replay buffer per clinic for reconnecting clients (``Last-Event-ID``).

Event ids are ``<boot>-<seq>``: ``boot`` is random per process start, ``seq`` grows by one
per notification of the clinic (its own count, so ids say nothing of other clinics). A
client whose id comes from another boot, from before a lost LISTEN connection, or from older
than the buffer keeps, is told to resynchronise (it may have missed events) instead of
being replayed a partial history silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
import structlog
from psycopg import sql

from neonpro.adapters.backoff import Backoff

log = structlog.get_logger(__name__)

# what a payload may carry to a client: ids, the change and the status (never personal data)
PAYLOAD_KEYS: Final = ("appointment_id", "event", "status", "version", "patient_id",
                       "professional_id", "rescheduled_from_id")


@dataclass(frozen=True, slots=True)
class FeedConfig:
    events_per_second: float = 10.0  # per connection (token bucket)
    burst: int = 10
    heartbeat_seconds: float = 15.0
    replay_events: int = 256  # per clinic
    replay_seconds: float = 300.0
    queue_size: int = 1000  # per connection; a slower client is told to resynchronise
    connect_timeout_seconds: float = 10.0
    reconnect_seconds: float = 1.0
    poll_seconds: float = 0.1  # how soon a new clinic's channel is listened to
    relay_seconds: float = 0.2  # on Citus: how often the outbox is relayed (revision 0020)


@dataclass(frozen=True, slots=True)
class FeedEvent:
    seq: int
    clinic_id: uuid.UUID
    data: dict[str, Any]
    at: float  # monotonic time of receipt

    def event_id(self, boot: str) -> str:
        return f"{boot}-{self.seq}"


RESYNC: Final = "resync"
HEARTBEAT: Final = "heartbeat"


@dataclass(eq=False, slots=True)
class Subscription:
    """One client's queue. ``None`` in the queue means "you may have missed events"."""

    clinic_id: uuid.UUID
    queue: asyncio.Queue[FeedEvent | None]
    overflowed: bool = False

    def offer(self, event: FeedEvent | None) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    async def next(self, heartbeat: float) -> FeedEvent | str:
        """The next event, :data:`RESYNC`, or :data:`HEARTBEAT` after ``heartbeat`` idle
        seconds."""
        if self.overflowed:
            self.overflowed = False
            while not self.queue.empty():
                self.queue.get_nowait()
            return RESYNC
        try:
            item = await asyncio.wait_for(self.queue.get(), heartbeat)
        except TimeoutError:
            return HEARTBEAT
        return RESYNC if item is None else item


class TokenBucket:
    """``rate`` events per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.last = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    async def take(self) -> None:
        self._refill()
        if self.tokens < 1:
            await asyncio.sleep((1 - self.tokens) / self.rate)
            self._refill()
        self.tokens -= 1


@dataclass(slots=True)
class _Clinic:
    buffer: deque[FeedEvent] = field(default_factory=deque)
    evicted_through: int = 0  # the highest seq dropped from the buffer
    seq: int = 0  # this clinic's own count: ids tell a clinic nothing of another's changes
    gap_through: int = 0  # events up to this seq may have been missed (lost LISTEN)
    subscribers: set[Subscription] = field(default_factory=set)


class ChangeFeed:
    """LISTEN once, fan out per clinic, remember a little for reconnects."""

    def __init__(self, conninfo: str, config: FeedConfig | None = None) -> None:
        self._conninfo = conninfo
        self.config = config or FeedConfig()
        self.boot = secrets.token_hex(4)
        self._clinics: dict[uuid.UUID, _Clinic] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self.connected = False
        # clinic -> set once its channel is listened to on the current connection
        self._wanted: dict[uuid.UUID, asyncio.Event] = {}
        self._channels: dict[str, uuid.UUID] = {}  # channel listened to -> its clinic

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> bool:
        """Start listening (once); True when the LISTEN connection is up."""
        if self._task is None or self._task.done():  # first use, or the listener died
            if self._task is not None:  # what it would have received is lost
                self._signal_gap()
            self._ready = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())
        assert self._ready is not None  # noqa: S101  (set together with the task)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), self.config.connect_timeout_seconds)
        return self.connected

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    async def _run(self) -> None:
        try:
            await self._listen()
        finally:
            self.connected = False

    async def _listen(self) -> None:
        # reconnects back off exponentially (reconnect_seconds doubling, up to 30 s) and
        # log when the connection is lost and when it is back, not every attempt
        backoff = Backoff("feed_listen", self.config.reconnect_seconds, cap=30.0, logger=log)
        lost = False
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    self._channels.clear()
                    for ready in self._wanted.values():
                        ready.clear()
                    await self._listen_wanted(conn)
                    self.connected = True
                    if lost:  # notifications sent while we were away are gone
                        self._signal_gap()
                    if self._ready is not None:
                        self._ready.set()
                    backoff.succeeded()
                    relay = _Relay(self.config.relay_seconds) if await _has_outbox(conn) \
                        else None
                    while True:
                        async for note in conn.notifies(timeout=self.config.poll_seconds):
                            self.publish(note.payload, self._channels.get(note.channel))
                        await self._listen_wanted(conn)
                        if relay is not None:
                            await _relay_or_log(relay, conn)
            except (psycopg.Error, OSError) as exc:
                delay = backoff.failed(exc)
            self.connected = False
            lost = True
            await asyncio.sleep(delay)

    async def _listen_wanted(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """LISTEN to the channel of every wanted clinic not listened to yet."""
        for clinic, ready in list(self._wanted.items()):
            if ready.is_set():
                continue
            cursor = await conn.execute("SELECT neonpro_feed_channel(%s)", (clinic,))
            row = await cursor.fetchone()
            channel = str(row[0]) if row else ""
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._channels[channel] = clinic
            ready.set()

    async def listen_to(self, clinic_id: uuid.UUID) -> bool:
        """Make sure the clinic's channel is listened to (before subscribing to it, so no
        change of the clinic falls between); False if that did not happen in time."""
        ready = self._wanted.setdefault(clinic_id, asyncio.Event())
        if not ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ready.wait(), self.config.connect_timeout_seconds)
        return ready.is_set()

    # ------------------------------------------------------------ publishing
    def publish(self, payload: str, channel_clinic: uuid.UUID | None = None,
                ) -> FeedEvent | None:
        """Hand one notification to its clinic's subscribers and buffer (bad ones dropped,
        and one whose clinic is not its channel's)."""
        try:
            raw = json.loads(payload)
            clinic_id = uuid.UUID(str(raw["clinic_id"]))
        except (ValueError, KeyError, TypeError):
            log.warning("feed_payload_refused")
            return None
        if channel_clinic is not None and channel_clinic != clinic_id:
            log.warning("feed_payload_refused")
            return None
        clinic = self._clinics.setdefault(clinic_id, _Clinic())
        clinic.seq += 1
        event = FeedEvent(clinic.seq, clinic_id, {k: raw.get(k) for k in PAYLOAD_KEYS},
                          time.monotonic())
        clinic.buffer.append(event)
        self._prune(clinic)
        for subscriber in list(clinic.subscribers):
            subscriber.offer(event)
        return event

    def _prune(self, clinic: _Clinic) -> None:
        oldest = time.monotonic() - self.config.replay_seconds
        while clinic.buffer and (len(clinic.buffer) > self.config.replay_events
                                 or clinic.buffer[0].at < oldest):
            clinic.evicted_through = clinic.buffer.popleft().seq

    def _signal_gap(self) -> None:
        for clinic in self._clinics.values():
            clinic.gap_through = clinic.seq
            for subscriber in clinic.subscribers:
                subscriber.offer(None)

    # ------------------------------------------------------------ subscribing
    def subscribe(self, clinic_id: uuid.UUID,
                  last_event_id: str | None = None) -> tuple[Subscription, list[FeedEvent], bool]:
        """A new subscription of ``clinic_id``, the buffered events after ``last_event_id``
        and whether they are complete (False: the client should resynchronise). Runs without
        awaiting, so no event falls between the backlog and the subscription."""
        clinic = self._clinics.setdefault(clinic_id, _Clinic())
        subscription = Subscription(clinic_id, asyncio.Queue(self.config.queue_size))
        clinic.subscribers.add(subscription)
        if last_event_id is None:
            return subscription, [], True
        self._prune(clinic)
        after = self._parse(last_event_id, clinic)
        if after is None:
            return subscription, [], False
        backlog = [e for e in clinic.buffer if e.seq > after]
        complete = after >= clinic.evicted_through and after >= clinic.gap_through
        return subscription, backlog, complete

    def _parse(self, last_event_id: str, clinic: _Clinic) -> int | None:
        boot, _, seq = last_event_id.strip().partition("-")
        if boot != self.boot or not (seq.isascii() and seq.isdigit()) or int(seq) > clinic.seq:
            return None
        return int(seq)

    def unsubscribe(self, subscription: Subscription) -> None:
        clinic = self._clinics.get(subscription.clinic_id)
        if clinic is not None:
            clinic.subscribers.discard(subscription)

    def subscriber_count(self, clinic_id: uuid.UUID | None = None) -> int:
        if clinic_id is not None:
            clinic = self._clinics.get(clinic_id)
            return len(clinic.subscribers) if clinic else 0
        return sum(len(c.subscribers) for c in self._clinics.values())


# On Citus the appointment trigger writes to an outbox instead of notifying (feed_sql,
# revision 0020): the listener on the coordinator relays it, deleting what it holds and
# notifying each payload on its clinic's channel in one transaction (delivered at commit,
# to this connection too). One relay at a time across processes (the advisory lock), in
# the order the rows were written (a clinic's rows are on one node: its clock).
_HAS_OUTBOX = "SELECT to_regclass('neonpro_feed_outbox') IS NOT NULL"
_RELAY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended('neonpro.feed.relay', 0))"
# (a volatile output column is computed after the sort: the notifications go in order)
_RELAY = ("WITH gone AS (DELETE FROM neonpro_feed_outbox RETURNING clinic_id, at, payload) "
          "SELECT count(*) FROM (SELECT pg_notify(neonpro_feed_channel(clinic_id), "
          "payload::text) FROM gone ORDER BY at) notified")


async def _has_outbox(conn: psycopg.AsyncConnection[Any]) -> bool:
    row = await (await conn.execute(_HAS_OUTBOX)).fetchone()
    return bool(row and row[0])


async def _relay_or_log(relay: _Relay, conn: psycopg.AsyncConnection[Any]) -> None:
    """A failed relay (a worker unreachable, a deadlock with housekeeping) is logged and
    tried again on the next turn; the LISTEN connection, and every clinic's feed, go on (a
    broken connection shows on the next read and is reconnected then)."""
    try:
        await relay.maybe_run(conn)
    except psycopg.Error as exc:
        log.warning("feed_relay_failed", error=type(exc).__name__)


class _Relay:
    def __init__(self, every: float) -> None:
        self.every = every
        self.last = 0.0

    async def maybe_run(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """Relay the outbox if ``every`` seconds have passed; how many were notified."""
        if time.monotonic() - self.last < self.every:
            return 0
        self.last = time.monotonic()
        async with conn.transaction():
            locked = await (await conn.execute(_RELAY_LOCK)).fetchone()
            if not (locked and locked[0]):
                return 0
            row = await (await conn.execute(_RELAY)).fetchone()
        return int(row[0]) if row else 0
