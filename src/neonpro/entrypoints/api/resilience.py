"""Staying up when the database does not: a deadline per request, retried reads.

* :class:`RequestDeadline` gives every request ``seconds`` to start its answer. Its units of
  work bound their statements and their COMMIT by the time left; a request still running at
  the deadline is answered ``503 request_timeout`` (``Retry-After``) if no commit had begun
  (its transaction is then rolled back when it reaches the commit), or ``503
  commit_outcome_unknown`` if one had (see :mod:`neonpro.adapters.db.deadline`). Streaming
  answers (the SSE feed) are bounded only until their first byte.
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
from neonpro.adapters.db.deadline import COMMITTED, RUNNING, Deadline
from neonpro.adapters.db.deadline import current as current_deadline
from neonpro.entrypoints.api.problems import COMMIT_OUTCOME_UNKNOWN

log = structlog.get_logger(__name__)
RETRY_AFTER_S = 2
READ_METHODS = frozenset({"GET", "HEAD"})
COMMITTED_GRACE_S = 1.0  # a commit finished at the deadline: time to send its answer
_ABANDONED: set[asyncio.Future[Any]] = set()  # late handlers still finishing in a thread


class RequestDeadline:
    """Answers 503 problem+json when a request has not started its answer in time.

    A request still running at its deadline is answered ``request_timeout`` if none of its
    commits had begun (nothing was written, and nothing will be: see
    :mod:`neonpro.adapters.db.deadline`), and ``commit_outcome_unknown`` if one had (a
    COMMIT waiting for a synchronous standby that does not answer, say): the client retries
    with its ``Idempotency-Key``. It never hangs past its deadline (plus a second's grace for
    an answer being written after a finished commit)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = Deadline(self.seconds, retried=scope.get("method") in READ_METHODS)
        watch = _Watch()

        async def guarded(message: Message) -> None:
            if watch.abandoned:
                return  # the client already has its 503
            if message["type"] == "http.response.start":
                watch.start()
            await send(message)

        token = current_deadline.set(deadline)  # copied into the task and its threads
        try:
            task = asyncio.ensure_future(self.app(scope, receive, guarded))
        finally:
            current_deadline.reset(token)
        task.add_done_callback(watch.wake)
        if not await watch.answered(task, self.seconds):
            found = deadline.expire()
            if found != COMMITTED or not await watch.answered(task, COMMITTED_GRACE_S):
                watch.abandoned = True
                _ABANDONED.add(task)
                task.add_done_callback(_finished_late)
                await _timed_out(send, scope, self.seconds, found)
                return
        await task  # answered, streaming, or just committed: its own answer goes out


class _Watch:
    """Wakes the middleware when the request's task ends, its answer starts or its time is
    up: one future and one timer per wait (``asyncio.wait`` on the task and an event's
    waiter cost a tenth of a GET's server CPU under py-spy)."""

    __slots__ = ("_waiter", "abandoned", "started")

    def __init__(self) -> None:
        self.abandoned = False
        self.started = False
        self._waiter: asyncio.Future[None] | None = None

    def start(self) -> None:
        self.started = True
        self.wake()

    def wake(self, *_: object) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def answered(self, task: asyncio.Future[Any], seconds: float) -> bool:
        """Whether the request finished or began its answer within ``seconds``."""
        if not (task.done() or self.started):
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            timer = loop.call_later(seconds, self.wake)
            try:
                await self._waiter
            finally:
                timer.cancel()
                self._waiter = None
        return task.done() or self.started


async def _timed_out(send: Send, scope: Scope, seconds: float, found: str) -> None:
    if found == RUNNING:
        log.warning("request_timeout", seconds=seconds, method=scope.get("method"))
        code, title = "request_timeout", "request timeout"
        detail = (f"the request did not complete within {seconds:g} s and nothing was "
                  "written; retry later")
    else:
        log.error("request_timeout_in_commit", seconds=seconds, method=scope.get("method"))
        code, title = "commit_outcome_unknown", "commit outcome unknown"
        detail = f"the request did not complete within {seconds:g} s: {COMMIT_OUTCOME_UNKNOWN}"
    body = {"type": f"https://neonpro.dev/problems/{code}", "title": title, "status": 503,
            "detail": detail}
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
