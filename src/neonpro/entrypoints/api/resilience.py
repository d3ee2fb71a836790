"""Staying up when the database does not: a deadline per request, retried reads.

* :class:`RequestDeadline` gives every request ``seconds`` to start its answer. Its units of
  work bound their statements by the time left; a request still running at the deadline is
  answered ``503 request_timeout`` (``Retry-After``) unless its commit has already begun,
  and its transaction is then rolled back when it reaches the commit (see
  :mod:`neonpro.adapters.db.deadline`). Streaming answers (the SSE feed) are bounded only
  until their first byte.
* :func:`retry_idempotent_reads` re-runs a GET whose database connection broke (killed,
  restarted, refused) a few times with jittered backoff, inside the deadline. Writes are
  never retried: a failed write is reported, and the unit of work makes sure it was not kept.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, request_response
from sqlalchemy.exc import DBAPIError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from neonpro.adapters.db.database import is_transient
from neonpro.adapters.db.deadline import Deadline
from neonpro.adapters.db.deadline import current as current_deadline

log = structlog.get_logger(__name__)
RETRY_AFTER_S = 2
READ_METHODS = frozenset({"GET", "HEAD"})
_ABANDONED: set[asyncio.Future[Any]] = set()  # late handlers still finishing in a thread


class RequestDeadline:
    """Answers 503 problem+json when a request has not started its answer in time."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = Deadline(self.seconds)
        started = asyncio.Event()
        abandoned = False

        async def guarded(message: Message) -> None:
            if abandoned:
                return  # the client already has its 503
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        token = current_deadline.set(deadline)  # copied into the task and its threads
        try:
            task = asyncio.ensure_future(self.app(scope, receive, guarded))
        finally:
            current_deadline.reset(token)
        first_byte = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait({task, first_byte}, timeout=self.seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            first_byte.cancel()
        if task.done() or started.is_set() or not deadline.expire():
            await task  # answered, streaming, or committing: its own answer goes out
            return
        abandoned = True
        _ABANDONED.add(task)
        task.add_done_callback(_finished_late)
        log.warning("request_timeout", seconds=self.seconds, method=scope.get("method"))
        body = {"type": "https://neonpro.dev/problems/request_timeout",
                "title": "request timeout", "status": 503,
                "detail": f"the request did not complete within {self.seconds:g} s and "
                          "nothing was written; retry later"}
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"retry-after", str(RETRY_AFTER_S).encode())]})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _finished_late(task: asyncio.Future[Any]) -> None:
    _ABANDONED.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("late_request_failed", error=type(task.exception()).__name__)


Handler = Callable[[Request], Awaitable[Response]]


def _retrying(handler: Handler, attempts: int, base_delay: float) -> Handler:
    async def handle(request: Request) -> Response:
        attempt = 1
        while True:
            try:
                return await handler(request)
            except DBAPIError as exc:
                delay = base_delay * (2 ** (attempt - 1)) * (1 + random.random() / 2)  # noqa: S311
                deadline = current_deadline.get()
                out_of_time = deadline is not None and deadline.remaining() < delay * 2
                if attempt >= attempts or out_of_time or not is_transient(exc):
                    raise
                log.warning("read_retried", attempt=attempt, error=type(exc.orig).__name__)
                attempt += 1
                await asyncio.sleep(delay)

    return handle


def retry_idempotent_reads(app: FastAPI, attempts: int, base_delay: float) -> None:
    """Wrap every GET route's handler (after the routers are included)."""
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.methods <= READ_METHODS:
            route.app = request_response(
                _retrying(route.get_route_handler(), attempts, base_delay))
