"""RFC 9457 problem details: every error a client can cause, in one place.

Messages come from the domain errors, which never carry personal values; FastAPI's own
validation error (which echoes the input) is replaced by one that names fields only.
"""

from __future__ import annotations

from typing import Any

import psycopg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from neonpro.adapters.crypto import DecryptionError
from neonpro.adapters.db.database import is_timeout, is_transient
from neonpro.adapters.db.deadline import CommitOutcomeUnknown, RequestTimedOut
from neonpro.adapters.db.errors import describe, origin_of
from neonpro.domain import errors as e
from neonpro.entrypoints.api.deps import audit_refusal, confirm_session, session_unchecked

log = structlog.get_logger(__name__)
BASE = "https://neonpro.dev/problems/"
MEDIA_TYPE = "application/problem+json"

STATUS: list[tuple[type[e.DomainError], int]] = [
    (e.Unauthenticated, 401), (e.TooManyAttempts, 429), (e.Forbidden, 403), (e.NotFound, 404),
    (e.Gone, 410),
    (e.ConsentRequired, 428), (e.StaleVersion, 409), (e.DoubleBooking, 409),
    (e.InvalidTransition, 409), (e.Conflict, 409), (e.BookingRuleViolation, 422),
    (e.ValidationFailed, 422),
]


class FieldError(BaseModel):
    field: str
    reason: str


class Problem(BaseModel):
    """RFC 9457 problem details; ``type`` is stable per error kind."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None


_DESCRIPTIONS = {
    400: "Malformed request body", 401: "Missing, invalid or expired token",
    403: "The token's role may not do this", 404: "Not found (or in another clinic)",
    409: "Conflict: duplicate, stale version, double booking or invalid transition; "
         "or a request with the same Idempotency-Key is still in progress, or was carried "
         "out but its answer was lost",
    410: "Gone: the record was erased or deleted and can no longer be changed; or the "
         "stored answer of this Idempotency-Key named a patient since erased",
    413: "Request body too large",
    422: "Validation failed (fields named, values never echoed); or this Idempotency-Key "
         "was used with another request",
    429: "Too many failed sign-ins from this address or for this e-mail: retry after the "
         "Retry-After header's seconds (said before any password is checked)",
    428: "Consent required for this purpose",
    503: "The database is unavailable, busy or too slow right now; nothing was written "
         "(but for commit_outcome_unknown: retry with the same Idempotency-Key, which "
         "answers what happened). Retry after the Retry-After header's seconds",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries documenting problem+json for ``statuses``."""
    return {s: {"description": _DESCRIPTIONS[s], "model": Problem,
                "content": {MEDIA_TYPE: {"schema": Problem.model_json_schema()}}}
            for s in statuses}


COMMON = responses(400, 401, 403, 404, 409, 413, 422, 428, 503)
RETRY_AFTER_S = 2
COMMIT_OUTCOME_UNKNOWN = (
    "the database connection broke during the commit, or the commit outlived the request's "
    "deadline, and whether it took effect is not known: retry with the same "
    "Idempotency-Key (it answers what happened), or read the resource before retrying")


def problem(status: int, code: str, title: str, detail: str | None = None,
            **extra: Any) -> JSONResponse:
    body = {"type": BASE + code, "title": title, "status": status, **extra}
    if detail:
        body["detail"] = detail
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None  # noqa: PLR2004
    if status == 503:  # noqa: PLR2004
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _unavailable(request: Request, exc: BaseException) -> JSONResponse:
    """503 for every way the database can fail us that a later retry may fix; the log
    line names the error class and SQLSTATE only (driver messages may carry values)."""
    orig = getattr(exc, "orig", exc)
    kind = type(orig).__name__
    request_id = getattr(request.state, "request_id", None)
    if isinstance(exc, PoolTimeout):
        log.warning("db_pool_exhausted", request_id=request_id)
        return problem(503, "pool_exhausted", "database connections exhausted",
                       "every database connection stayed busy for the pool timeout; "
                       "nothing was written")
    if isinstance(exc, RequestTimedOut):
        return problem(503, "request_timeout", "request timeout",
                       "the request ran out of time and nothing was written")
    if isinstance(exc, CommitOutcomeUnknown):
        log.error("db_commit_outcome_unknown", request_id=request_id)
        return problem(503, "commit_outcome_unknown", "commit outcome unknown",
                       COMMIT_OUTCOME_UNKNOWN)
    sqlstate = getattr(orig, "sqlstate", None)
    if is_timeout(exc):
        log.warning("db_query_timeout", sqlstate=sqlstate, origin=origin_of(exc),
                    request_id=request_id)
        return problem(503, "query_timeout", "query timeout",
                       "a database statement exceeded its time limit and was cancelled; "
                       "nothing was written")
    log.warning("db_unavailable", error=kind, sqlstate=sqlstate, origin=origin_of(exc),
                request_id=request_id)
    return problem(503, "database_unavailable", "database unavailable",
                   "the database could not be reached or dropped the connection; "
                   "nothing was written")


def _named(request: Request, part: object) -> str:
    """A location step of a validation error as the API may repeat it: a position, or a
    name the OpenAPI document declares; a key the client made up (a CPF or an e-mail as a
    key of ``external_ids``, say) becomes ``*``."""
    if isinstance(part, int):
        return str(part)
    app = request.app
    names: frozenset[str] | None = getattr(app.state, "declared_names", None)
    if names is None:
        spec = app.openapi()
        found = {p["name"] for ops in spec.get("paths", {}).values() for op in ops.values()
                 if isinstance(op, dict) for p in op.get("parameters", [])}
        for schema in spec.get("components", {}).get("schemas", {}).values():
            found.update(schema.get("properties", {}))
        names = app.state.declared_names = frozenset(found)
    return str(part) if part in names else "*"


def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 for a body that is no JSON object, else 422 naming each field (as declared)."""
    fields = []
    malformed = False
    for err in exc.errors():
        kind = str(err.get("type", ""))
        malformed |= kind in {"json_invalid", "model_attributes_type"} or (
            kind == "dict_type" and tuple(err.get("loc", ())) == ("body",))
        loc = [_named(request, p) for p in err.get("loc", ()) if p not in ("body",)]
        if kind == "extra_forbidden":  # the unknown key is the client's: never echoed
            loc = [*loc[:-1], "(unknown field)"]
        reason = str(err.get("msg", "invalid")).split(", input_value", 1)[0]
        fields.append({"field": ".".join(loc) or "body", "reason": reason})
    if malformed:
        return problem(400, "malformed_body", "malformed request body",
                       "the body is not the JSON object this operation expects")
    return problem(422, "validation_failed", "validation failed",
                   "one or more fields are invalid", errors=fields)


def _status_of(exc: e.DomainError) -> int:
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 400)


def install(app: FastAPI) -> None:
    _install_unavailable(app)

    @app.exception_handler(e.DomainError)
    async def domain_error(request: Request, exc: e.DomainError) -> JSONResponse:
        if isinstance(exc, e.Forbidden) and not exc.audited:
            failed = await _audit_refusal(request, exc)
            if failed is not None:
                return failed
        extra: dict[str, Any] = {}
        field = getattr(exc, "field", None)
        if field:
            extra["errors"] = [{"field": field, "reason": getattr(exc, "reason", exc.message)}]
        answer = problem(_status_of(exc), exc.code, exc.code.replace("_", " "), exc.message,
                         **extra)
        if isinstance(exc, e.TooManyAttempts):
            answer.headers["Retry-After"] = str(exc.retry_after_s)
        return answer

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _invalid(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large",
                401: "unauthenticated", 403: "forbidden"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail).lower())

    @app.exception_handler(DecryptionError)
    async def undecryptable(request: Request, exc: DecryptionError) -> JSONResponse:
        log.error("decryption_failed", request_id=request.state.request_id)
        return problem(500, "internal_error", "internal error",
                       "a stored value could not be decrypted; the operators were alerted")


async def _audit_refusal(request: Request, exc: e.Forbidden) -> JSONResponse | None:
    """Every 403 is audited: the role checks and units of work record theirs; one raised
    anywhere else is recorded here. If it cannot be recorded, the caller gets a 503 (still
    refused, and told to retry) rather than an unrecorded refusal."""
    caller = getattr(request.state, "principal", None)
    if caller is not None and session_unchecked(request):  # a dead session is a 401
        try:
            await run_in_threadpool(confirm_session, request)
        except e.Unauthenticated as dead:
            return problem(401, dead.code, dead.code.replace("_", " "), dead.message)
    if caller is None:
        log.warning("refusal_without_caller", request_id=getattr(request.state,
                                                                 "request_id", None))
        return None
    try:
        await run_in_threadpool(audit_refusal, request, caller, exc)
    except Exception as failure:  # noqa: BLE001
        log.error("refusal_not_audited", error=type(failure).__name__,  # noqa: TRY400 (no traceback: it may carry values)
                  request_id=getattr(request.state, "request_id", None))
        return _unavailable(request, failure)
    return None


def _install_unavailable(app: FastAPI) -> None:
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(RequestTimedOut)
    @app.exception_handler(CommitOutcomeUnknown)
    @app.exception_handler(psycopg.OperationalError)
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return _unavailable(request, exc)

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if is_transient(exc) or is_timeout(exc):
            return _unavailable(request, exc)
        # the constraint, SQLSTATE and the statement's origin (repository and method),
        # never the driver's message: an operator can find the statement from this line
        log.error("db_error", error="unhandled", **describe(exc),
                  request_id=getattr(request.state, "request_id", None))
        return problem(500, "internal_error", "internal error",
                       "the operators were alerted")
