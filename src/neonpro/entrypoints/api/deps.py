"""Request-scoped dependencies: the container, the caller, their unit of work, role checks.

A role check's refusal (403) is a security event: :func:`refuse` records it in the audit
trail (``PERMISSION_DENIED``, status ``blocked``: actor and role, the operation attempted,
the resource type, the roles that may) before the caller is answered, through the same
mechanism as every other refusal (:func:`neonpro.services.audit.record_denial`).
"""

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from neonpro.adapters.auth import Principal, TokenCodec
from neonpro.adapters.db.uow import SqlUnitOfWork
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Forbidden, Unauthenticated
from neonpro.domain.vocabulary import ClinicRole, RiskLevel
from neonpro.services.audit import record_denial

bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/login")

STAFF = frozenset({ClinicRole.ADMIN, ClinicRole.PROFESSIONAL, ClinicRole.RECEPTIONIST})
CLINICAL = frozenset({ClinicRole.ADMIN, ClinicRole.PROFESSIONAL})
ADMIN = frozenset({ClinicRole.ADMIN})
OVERSIGHT = frozenset({ClinicRole.ADMIN, ClinicRole.DPO})
EVERYONE = frozenset(ClinicRole)


# Dependencies that do no I/O are ``async``: FastAPI runs a plain ``def`` one in the thread
# pool, a hand-off each (routing.py)
async def container(request: Request) -> Container:
    box: Container = request.app.state.container
    return box


async def codec(request: Request) -> TokenCodec:
    value: TokenCodec = request.app.state.codec
    return value


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    tokens: Annotated[TokenCodec, Depends(codec)],
) -> Principal:
    """The token's caller, its signature and claims checked here; whether its session is
    live (a database statement) is checked by :func:`confirm_session` in the route's one
    hand-off to the thread pool, before the endpoint runs (``routing.OneHopRoute``)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("a bearer token is required")
    caller = tokens.decode(credentials.credentials)
    request.state.principal = caller
    request.state.session_unchecked = True
    return caller


def session_unchecked(request: Request) -> bool:
    """Whether the request carries a token whose session has not been checked yet."""
    return bool(getattr(request.state, "session_unchecked", False))


def confirm_session(request: Request) -> None:
    """Refuse (401) a token whose session is not live: signed but never issued (or for no
    clinic), signed out, revoked, expired, or its membership gone or changed. Blocking:
    runs in the thread pool, before anything else the request does in the database."""
    if not session_unchecked(request):
        return
    caller: Principal = request.state.principal
    box: Container = request.app.state.container
    if not box.session_live(caller.token_id, caller.user_id, caller.clinic_id,
                            caller.role.value):
        raise Unauthenticated("invalid or expired token")
    request.state.session_unchecked = False


def actor_of(request: Request, caller: Principal) -> Actor:
    client = request.client.host if request.client else None
    return Actor(caller.user_id, caller.role.value, ip_address=client,
                 request_id=request.state.request_id,
                 user_agent=request.headers.get("user-agent"), session_id=caller.token_id)


def _path_id(request: Request, name: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(request.path_params[name]))
    except (KeyError, ValueError):
        return None


def refuse(request: Request, caller: Principal, message: str, *,
           allowed: frozenset[ClinicRole] | None = None,
           fields: list[str] | None = None) -> Forbidden:
    """Record the refusal of ``caller`` on this request, durably, and return the Forbidden
    to raise."""
    refusal = Forbidden(message)
    audit_refusal(request, caller, refusal, allowed=allowed, fields=fields)
    return refusal


def audit_refusal(request: Request, caller: Principal, refusal: Forbidden, *,
                  allowed: frozenset[ClinicRole] | None = None,
                  fields: list[str] | None = None) -> None:
    """Record ``refusal`` of ``caller`` on this request in the audit trail (committed before
    this returns) and mark it audited. Refusing an oversight operation (the audit trail,
    erasure, the data-subject requests and exports, incidents: what only admins and the DPO
    may do) is high risk, any other medium."""
    route = request.scope.get("route")
    template = route.path if isinstance(route, APIRoute) else request.url.path
    tags = route.tags if isinstance(route, APIRoute) else []
    resource = str(tags[0]) if tags else template.strip("/").split("/", 1)[0] or None
    ids = [n for n in (request.path_params or {}) if n.endswith("_id")]
    details: dict[str, object] = {"attempted": f"{request.method} {template}"}
    if allowed is not None:
        details["allowed_roles"] = sorted(r.value for r in allowed)
    if fields:  # names of the refused fields, never their values
        details["fields"] = sorted(fields)
    risk = (RiskLevel.HIGH if allowed is not None and ClinicRole.DPO in allowed
            and allowed <= OVERSIGHT else RiskLevel.MEDIUM)
    box: Container = request.app.state.container
    record_denial(box.audit_chain, actor_of(request, caller), caller.clinic_id, refusal,
                  resource_type=resource, resource_id=_path_id(request, ids[-1]) if ids else None,
                  patient_id=_path_id(request, "patient_id"), risk=risk, details=details)


def allow(roles: frozenset[ClinicRole]) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits only ``roles`` (a 403 for any other valid token, audited)."""

    async def check(request: Request,
                    caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if caller.role not in roles:
            raise await run_in_threadpool(_refuse_role, request, caller, roles)
        return caller

    check.roles = roles  # type: ignore[attr-defined]  # the permission table, read by tests
    return check


def _refuse_role(request: Request, caller: Principal,
                 roles: frozenset[ClinicRole]) -> Forbidden:
    """A live session's caller refused for its role (a dead session's is a 401, unaudited)."""
    confirm_session(request)
    return refuse(request, caller, f"the {caller.role.value} role may not do this",
                  allowed=roles)


class Caller:
    """The caller's identity and a factory of units of work in their clinic."""

    def __init__(self, request: Request, caller: Principal, box: Container) -> None:
        self.principal = caller
        self.actor = actor_of(request, caller)
        self._box = box
        self._request = request

    def forbid(self, message: str, *, fields: list[str] | None = None) -> Forbidden:
        """A refusal decided in the route (``fields`` the role may not write, say), audited
        like the role check's: raise what this returns."""
        return refuse(self._request, self.principal, message, fields=fields)

    @property
    def role(self) -> ClinicRole:
        return self.principal.role

    @property
    def sees_clinical(self) -> bool:
        return self.principal.role in CLINICAL

    @property
    def clinic_id(self) -> uuid.UUID:
        return self.principal.clinic_id

    @property
    def container(self) -> Container:
        """The application's container, for the services that take it whole."""
        return self._box

    def uow(self) -> SqlUnitOfWork:
        return self._box.uow(self.principal.clinic_id, self.actor)

    def admin_uow(self) -> SqlUnitOfWork:
        """The service role scoped to the caller's clinic (audited administrative work:
        :meth:`Container.admin_uow`)."""
        return self._box.admin_uow(self.principal.clinic_id, self.actor)

    def signed_in(self) -> bool:
        """Whether the token's session is still live (a long stream asks again)."""
        who = self.principal
        return self._box.session_live(who.token_id, who.user_id, who.clinic_id, who.role.value)


def caller_with(roles: frozenset[ClinicRole]) -> Callable[..., Awaitable[Caller]]:
    checker = allow(roles)

    async def build(request: Request, who: Annotated[Principal, Depends(checker)],
                    box: Annotated[Container, Depends(container)]) -> Caller:
        return Caller(request, who, box)

    return build
