"""``GET /feed/appointments``: the clinic's appointment changes as Server-Sent Events.

Each frame is ``id: <boot>-<seq>``, ``event: appointment`` and a JSON ``data`` line with the
appointment, patient and professional ids, the change (``booked``, ``rescheduled``,
``confirmed``, ``checked_in``, ``started``, ``completed``, ``no_show``, ``cancelled``,
``deleted``), the status and the version: never a name or any text. The token's clinic
decides what a connection receives. At most ``events_per_second`` frames per connection
(bursts of ``burst``); a comment line every ``heartbeat_seconds`` when idle; a reconnecting
client sends ``Last-Event-ID`` and gets what it missed from the buffer, or an
``event: resync`` frame when the buffer cannot vouch for that (refetch, then carry on).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from neonpro.adapters.feed import HEARTBEAT, RESYNC, ChangeFeed, FeedConfig, FeedEvent, TokenBucket
from neonpro.bootstrap import Container
from neonpro.domain.vocabulary import AuditAction, AuditResource
from neonpro.entrypoints.api import problems
from neonpro.entrypoints.api.deps import EVERYONE, Caller, caller_with
from neonpro.entrypoints.api.routing import OneHopRoute

router = APIRouter(route_class=OneHopRoute, tags=["feed"])
RETRY_MS = 3000


def _conninfo(box: Container) -> str:
    """The service login: only it may learn a clinic's channel (``feed_sql.py``)."""
    return box.database.url_for("service").replace("postgresql+psycopg://", "postgresql://", 1)


async def feed_of(request: Request) -> ChangeFeed:
    """The process's feed, created on first use and stopped with the application."""
    app = request.app
    feed: ChangeFeed | None = getattr(app.state, "feed", None)
    if feed is None:
        conninfo = await run_in_threadpool(_conninfo, app.state.container)
        feed = getattr(app.state, "feed", None)  # another request may have won meanwhile
        if feed is None:
            config = getattr(app.state, "feed_config", None) or FeedConfig()
            feed = ChangeFeed(conninfo, config)
            app.state.feed = feed
    return feed


def _frame(feed: ChangeFeed, event: FeedEvent) -> str:
    return (f"id: {event.event_id(feed.boot)}\nevent: appointment\n"
            f"data: {json.dumps(event.data, separators=(',', ':'))}\n\n")


def _session_ended() -> str:
    return f"event: session_ended\ndata: {json.dumps({'reason': 'signed out or revoked'})}\n\n"


def _resync(reason: str) -> str:
    return f"event: {RESYNC}\ndata: {json.dumps({'reason': reason})}\n\n"


async def _stream(request: Request, feed: ChangeFeed, last_event_id: str | None,
                  caller: Caller) -> AsyncIterator[str]:
    subscription, backlog, complete = feed.subscribe(caller.principal.clinic_id, last_event_id)
    config = feed.config
    bucket = TokenBucket(config.events_per_second, config.burst)
    try:
        yield f"retry: {RETRY_MS}\n\n"
        if not complete:
            yield _resync("events since Last-Event-ID are no longer buffered")
        sent = 0
        for event in backlog:
            await bucket.take()
            yield _frame(feed, event)
            sent = event.seq
        while not await request.is_disconnected():
            item = await subscription.next(config.heartbeat_seconds)
            if item == HEARTBEAT:
                # a stream outlives requests: the session is asked again at each heartbeat,
                # and a signed-out or revoked one ends the stream
                if not await run_in_threadpool(caller.signed_in):
                    yield _session_ended()
                    return
                yield ": heartbeat\n\n"
            elif item == RESYNC:
                yield _resync("events may have been missed")
            elif isinstance(item, FeedEvent) and item.seq > sent:
                await bucket.take()
                yield _frame(feed, item)
    finally:
        feed.unsubscribe(subscription)


def _audit_subscription(caller: Caller) -> None:
    with caller.uow() as tx:
        tx.audit.record(AuditAction.VIEW, AuditResource.APPOINTMENT_FEED)
        tx.commit()


@router.get(
    "/feed/appointments",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "Server-Sent Events, one per appointment change"},
               503: {"description": "The database's notifications cannot be received now",
                     "content": {problems.MEDIA_TYPE: {}}}},
)
async def appointment_feed(
    request: Request,
    caller: Annotated[Caller, Depends(caller_with(EVERYONE))],
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> Response:
    """Appointment changes of the token's clinic, live (ids and status only)."""
    feed = await feed_of(request)
    if not await feed.start() or not await feed.listen_to(caller.principal.clinic_id):
        return problems.problem(503, "feed_unavailable", "The change feed is not available",
                                "the database's notifications cannot be received now")
    await run_in_threadpool(_audit_subscription, caller)
    return StreamingResponse(
        _stream(request, feed, last_event_id, caller), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
