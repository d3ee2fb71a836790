"""ASGI middleware: request ids, metrics, and the request body size limit."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from neonpro.adapters.metrics import Metrics

log = structlog.get_logger(__name__)
MAX_ID = 64


class RequestContext:
    """Gives every request an id (``X-Request-ID`` if sane, else a new one), binds it for
    logging, echoes it back, and records its count and latency by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if given.isascii() and 0 < len(given) <= MAX_ID and given.replace(
            "-", "").isalnum() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = scope.get("route")
                template = getattr(route, "path", "unmatched")
                elapsed = time.perf_counter() - start
                self.metrics.requests.labels(scope["method"], template, str(status)).inc()
                self.metrics.latency.labels(scope["method"], template).observe(elapsed)


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413 problem+json, streamed or not."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLargeError
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLargeError:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body: dict[str, Any] = {"type": "https://neonpro.dev/problems/body_too_large",
                                "title": "body too large", "status": 413,
                                "detail": f"the request body exceeds {self.limit} bytes"}
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json")]})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


class _TooLargeError(Exception):
    pass
