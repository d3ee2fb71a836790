"""``Idempotency-Key`` on every POST, PATCH and DELETE (docs/reliability.md).

A client that did not get an answer (a timeout, a dropped connection, a ``503
commit_outcome_unknown``) sends the same request again with the same key: it gets the first
answer, and the work is not done again (see :mod:`neonpro.services.idempotency`).

* Keys are 1 to 255 visible ASCII characters, per clinic, kept at least 24 hours
  (``NEONPRO_IDEMPOTENCY_TTL_HOURS``); only their SHA-256 is stored.
* The same key with another request (method, path, query, body, or another caller) is a
  ``422 idempotency_key_reused``; a retry while the first is still running is a ``409
  idempotency_key_in_flight`` with ``Retry-After``.
* Answers below 500 are kept (a 4xx is a decided outcome too) and replayed with the header
  ``Idempotent-Replayed: true``; a 5xx gives the key back, unless the work had committed.
* The answer is stored encrypted with the field keys, and scrubbed when a patient it names
  is erased (a replay then answers ``410 idempotent_answer_gone``).
* Sign-in and sign-out (``/auth/...``) take no key: a token is never stored.
* A legal-hold read (``.../legal-hold/read``) takes no key: each read is audited afresh, and
  no copy of a blocked record is kept.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, request_response
from starlette.concurrency import run_in_threadpool

from neonpro.adapters.auth import Principal
from neonpro.adapters.db.deadline import Deadline
from neonpro.adapters.db.deadline import current as current_deadline
from neonpro.adapters.db.repositories.idempotency import current_claim
from neonpro.bootstrap import Container
from neonpro.domain.errors import DomainError
from neonpro.domain.idempotency import Claim
from neonpro.entrypoints.api.deps import actor_of
from neonpro.entrypoints.api.problems import MEDIA_TYPE, problem
from neonpro.services import idempotency as svc

log = structlog.get_logger(__name__)
T = TypeVar("T")
HEADER = "Idempotency-Key"
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE", "PUT"})
EXEMPT_PREFIXES = ("/auth/", "/console")  # the console's forms: a CSRF token, no key
# a legal-hold read is a read whose every answer must be audited afresh, and a kept copy of
# a blocked record would be one outside the hold: no key, nothing kept
EXEMPT_SUFFIXES = ("/legal-hold/read",)
_VALID = re.compile(r"^[\x21-\x7e]{1,255}$")
_NOT_KEPT = frozenset({401, 408, 429})  # not an outcome of the request itself
_PATIENT_ROUTES = ("/patients",)
Handler = Callable[[Request], Awaitable[Response]]

PARAMETER: dict[str, Any] = {
    "name": HEADER, "in": "header", "required": False,
    "description": "Makes a retry of this request safe: the same key with the same request "
                   "answers the first answer without doing the work again (kept at least "
                   "24 hours, per clinic). Another request with the same key: 422; while "
                   "the first is still running: 409. See docs/reliability.md.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}
_PROBLEM = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
RESPONSES: dict[str, Any] = {
    "410": {"description": "Gone: the record was erased or deleted; or the kept answer of "
                           "this Idempotency-Key named a patient since erased",
            "content": _PROBLEM},
}


def use_idempotency_keys(app: FastAPI) -> None:
    """Wrap every POST, PATCH and DELETE route (after the routers are included), and
    document the header on each."""
    for route in app.router.routes:
        if (isinstance(route, APIRoute) and route.methods & WRITE_METHODS
                and not route.path.startswith(EXEMPT_PREFIXES)
                and not route.path.endswith(EXEMPT_SUFFIXES)):
            route.app = request_response(_idempotent(route.get_route_handler()))
            extra = dict(route.openapi_extra or {})
            extra["parameters"] = [*extra.get("parameters", []), PARAMETER]
            extra["responses"] = {**RESPONSES, **extra.get("responses", {})}
            route.openapi_extra = extra


def _idempotent(handler: Handler) -> Handler:
    async def handle(request: Request) -> Response:
        raw = request.headers.get(HEADER)
        if raw is None:
            return await handler(request)
        if not _VALID.match(raw):
            return problem(400, "invalid_idempotency_key", "invalid idempotency key",
                           "the Idempotency-Key header must be 1 to 255 visible ASCII "
                           "characters")
        caller = _caller(request)
        if caller is None:
            return await handler(request)  # the route itself answers 401
        box: Container = request.app.state.container
        actor = actor_of(request, caller)
        key_hash = hashlib.sha256(b"neonpro-idempotency-key\0" + raw.encode()).digest()
        fingerprint = _fingerprint(request, await request.body(), caller)
        settings = box.settings
        deadline = current_deadline.get()
        left = deadline.remaining() if deadline is not None else settings.request_timeout_s
        begun = await _bookkeeping(max(left, 0.5), svc.begin, box.uow(caller.clinic_id, actor),
                                   key_hash, fingerprint, settings.request_timeout_s + 2,
                                   settings.idempotency_ttl_hours)
        if not isinstance(begun, svc.Claimed):
            return _answer(begun)
        claim = begun.claim
        token = current_claim.set(claim)
        try:
            response = await _run(handler, request)
        except BaseException:
            await _give_back(box, caller, actor, claim)
            raise
        finally:
            current_claim.reset(token)
        if response.status_code >= 500 or response.status_code in _NOT_KEPT or not hasattr(  # noqa: PLR2004
                response, "body"):
            await _give_back(box, caller, actor, claim)
            return response
        await _keep(box, caller, actor, claim, request, response)
        return response

    return handle


async def _run(handler: Handler, request: Request) -> Response:
    """The route's answer, errors included (rendered as the application would), so that a
    4xx can be kept like any other answer."""
    try:
        return await handler(request)
    except Exception as exc:
        render = _handler_for(request, exc)
        if render is None:
            raise
        answer = render(request, exc)
        rendered: Response = await answer if inspect.isawaitable(answer) else answer
        return rendered


def _handler_for(request: Request, exc: Exception) -> Callable[..., Any] | None:
    handlers: dict[Any, Callable[..., Any]] = request.app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


def _caller(request: Request) -> Principal | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        return None
    try:
        principal: Principal = request.app.state.codec.decode(credentials)
    except DomainError:
        return None
    return principal


def _fingerprint(request: Request, body: bytes, caller: Principal) -> bytes:
    """What makes two requests the same request: method, path, query, body and caller."""
    digest = hashlib.sha256(b"neonpro-idempotent-request-v1")
    for part in (request.method.encode(), request.url.path.encode(),
                 request.scope.get("query_string", b""), body, caller.user_id.bytes,
                 caller.clinic_id.bytes, caller.role.value.encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.digest()


async def _bookkeeping(seconds: float, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a worker thread with a deadline of its own (``seconds``; its COMMIT is
    cut there like any other) and outside the request's claim. Its own: claiming must not
    count as the request's commit, and keeping an answer must work even after the client
    was answered 503 at the request's deadline."""
    context = contextvars.copy_context()
    context.run(current_deadline.set, Deadline(seconds))
    context.run(current_claim.set, None)
    return await run_in_threadpool(context.run, fn, *args)


async def _give_back(box: Container, caller: Principal, actor: Any, claim: Claim) -> None:
    try:
        await _bookkeeping(box.settings.request_timeout_s, svc.release,
                           box.uow(caller.clinic_id, actor), claim)
    except Exception as exc:  # noqa: BLE001  (the lease frees the key later)
        log.warning("idempotency_release_failed", error=type(exc).__name__)


async def _keep(box: Container, caller: Principal, actor: Any, claim: Claim,
                request: Request, response: Response) -> None:
    body = bytes(response.body).decode("utf-8", errors="replace")
    try:
        await _bookkeeping(box.settings.request_timeout_s, svc.finish,
                           box.uow(caller.clinic_id, actor), claim, response.status_code,
                           response.headers.get("content-type"), body,
                           _patients(request, response))
    except Exception as exc:  # noqa: BLE001  (the work stands; a retry learns it was applied)
        log.warning("idempotency_answer_not_kept", error=type(exc).__name__)


def _patients(request: Request, response: Response) -> list[uuid.UUID]:
    """The patients an answer names (an erasure of any of them scrubs it)."""
    found: set[uuid.UUID] = set()
    _add(found, request.path_params.get("patient_id"))
    try:
        data = json.loads(bytes(response.body)) if response.body else None
    except ValueError:
        data = None
    route = getattr(request.scope.get("route"), "path", "")
    if isinstance(data, dict) and route.startswith(_PATIENT_ROUTES):
        _add(found, data.get("id"))
    _walk(found, data)
    return sorted(found)


def _walk(found: set[uuid.UUID], data: Any) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "patient_id":
                _add(found, value)
            _walk(found, value)
    elif isinstance(data, list):
        for item in data:
            _walk(found, item)


def _add(found: set[uuid.UUID], value: Any) -> None:
    try:
        found.add(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError:
        return


def _answer(begun: svc.Begun) -> Response:
    if isinstance(begun, svc.Replay):
        return Response(begun.body.encode() if begun.status != 204 else None,  # noqa: PLR2004
                        status_code=begun.status, media_type=begun.content_type,
                        headers={"Idempotent-Replayed": "true"})
    if isinstance(begun, svc.Mismatch):
        return problem(422, "idempotency_key_reused", "idempotency key reused",
                       "this Idempotency-Key was used with another request (method, path, "
                       "query, body or caller differ); use a new key for a new request")
    if isinstance(begun, svc.Applied):
        return problem(409, "request_already_applied", "request already applied",
                       "the first request with this Idempotency-Key was carried out, but its "
                       "answer was lost; it was not done again: read what it changed",
                       resources=begun.resources)
    if isinstance(begun, svc.Scrubbed):
        return problem(410, "idempotent_answer_gone", "idempotent answer gone",
                       "the first request with this Idempotency-Key was carried out; its "
                       "answer named a patient since erased and was removed")
    answer = problem(409, "idempotency_key_in_flight", "idempotency key in flight",
                     "a request with this Idempotency-Key is still being processed; retry "
                     "after the Retry-After header's seconds")
    answer.headers["Retry-After"] = "1"
    return answer

