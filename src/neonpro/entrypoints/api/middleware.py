"""ASGI middleware: request ids, metrics, the request body size limit, and the last resort."""

from __future__ import annotations

import json
import re
import time
import traceback
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from neonpro.adapters.metrics import Metrics

log = structlog.get_logger(__name__)
MAX_ID = 64
# A client's X-Request-ID is kept only if it looks like an id (a UUID, or 8 to 64 hex digits
# with dashes, at least one of them a letter): anything else (a name, an e-mail, free text)
# would be logged as given. Decimal digits alone are refused: a CPF (11144477735), a CNS or
# a phone number is 8 to 64 "hex digits" too.
_REQUEST_ID = re.compile(r"[0-9A-Fa-f](?:[0-9A-Fa-f-]{6,62})[0-9A-Fa-f]")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_HEX_LETTER = re.compile(r"[A-Fa-f]")


def kept_request_id(given: str) -> bool:
    """Whether a client's ``X-Request-ID`` is used as the request's id (else one is made)."""
    if _UUID.fullmatch(given):
        return True
    return bool(_REQUEST_ID.fullmatch(given)) and _HEX_LETTER.search(given) is not None


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
        request_id = given if kept_request_id(given) else uuid.uuid4().hex
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


class LastResort:
    """Whatever escapes every handler is answered 500 ``application/problem+json`` (or, if the
    answer had started, the connection is closed) and logged by class and place only: an
    exception's message can carry what the client sent (a name parsed as a date, say)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started |= message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001  (the last resort: nothing else answers)
            log.error("unhandled_exception", error=type(exc).__name__, **where(exc),  # noqa: TRY400  (no traceback: it holds values)
                      method=scope.get("method"))
            if started:
                return
            body = {"type": "https://neonpro.dev/problems/internal_error",
                    "title": "internal error", "status": 500,
                    "detail": "the operators were alerted"}
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/problem+json")]})
            await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def where(exc: BaseException) -> dict[str, str]:
    """Where an exception was raised (``at``, the innermost frame) and the innermost frame of
    our own code it passed through (``via``), as ``path:function:line``: a place to look,
    never a value."""
    frames = traceback.extract_tb(exc.__traceback__)

    def place(frame: traceback.FrameSummary) -> str:
        path = frame.filename.replace("\\", "/")
        short = path.rsplit("/neonpro/", 1)[-1] if "/neonpro/" in path else "/".join(
            path.rsplit("/", 3)[-3:])
        return f"{short}:{frame.name}:{frame.lineno}"

    ours = [f for f in frames if "/neonpro/" in f.filename.replace("\\", "/")]
    return {"at": place(frames[-1]) if frames else "unknown",
            "via": place(ours[-1]) if ours else "none"}


class BodyLimit:
    """Refuses bodies over ``limit`` bytes with 413 problem+json, declared or streamed.

    A body with a Content-Length over the limit is refused before it is read. A body without
    one (``Transfer-Encoding: chunked``) is read here first, up to the limit, and handed to
    the application whole: the framework's body parser would turn an error raised while it
    reads into a 400 "error parsing the body"."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)  # the server holds it to its length
            return
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, send: Send) -> None:
        body: dict[str, Any] = {"type": "https://neonpro.dev/problems/body_too_large",
                                "title": "body too large", "status": 413,
                                "detail": f"the request body exceeds {self.limit} bytes"}
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/problem+json")]})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read once, then the client's own messages (a disconnect, say)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
