"""Request-scoped dependencies: the container, the caller, their unit of work, role checks."""


from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from neonpro.adapters.auth import Principal, TokenCodec
from neonpro.adapters.db.uow import SqlUnitOfWork
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Forbidden, Unauthenticated
from neonpro.domain.vocabulary import ClinicRole

bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/login")

STAFF = frozenset({ClinicRole.ADMIN, ClinicRole.PROFESSIONAL, ClinicRole.RECEPTIONIST})
CLINICAL = frozenset({ClinicRole.ADMIN, ClinicRole.PROFESSIONAL})
ADMIN = frozenset({ClinicRole.ADMIN})
OVERSIGHT = frozenset({ClinicRole.ADMIN, ClinicRole.DPO})
EVERYONE = frozenset(ClinicRole)


def container(request: Request) -> Container:
    box: Container = request.app.state.container
    return box


def codec(request: Request) -> TokenCodec:
    value: TokenCodec = request.app.state.codec
    return value


def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    tokens: Annotated[TokenCodec, Depends(codec)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("a bearer token is required")
    caller = tokens.decode(credentials.credentials)
    box: Container = request.app.state.container
    if not box.clinic_exists(caller.clinic_id, actor_of(request, caller)):
        raise Unauthenticated("invalid or expired token")  # signed, for no clinic
    request.state.principal = caller
    return caller


def actor_of(request: Request, caller: Principal) -> Actor:
    client = request.client.host if request.client else None
    return Actor(caller.user_id, caller.role.value, ip_address=client,
                 request_id=request.state.request_id,
                 user_agent=request.headers.get("user-agent"), session_id=caller.token_id)


def allow(roles: frozenset[ClinicRole]) -> Callable[..., Principal]:
    """A dependency that admits only ``roles`` (a 403 for any other valid token)."""

    def check(caller: Annotated[Principal, Depends(principal)]) -> Principal:
        if caller.role not in roles:
            raise Forbidden(f"the {caller.role.value} role may not do this")
        return caller

    return check


class Caller:
    """The caller's identity and a factory of units of work in their clinic."""

    def __init__(self, request: Request, caller: Principal, box: Container) -> None:
        self.principal = caller
        self.actor = actor_of(request, caller)
        self._box = box

    @property
    def role(self) -> ClinicRole:
        return self.principal.role

    @property
    def sees_clinical(self) -> bool:
        return self.principal.role in CLINICAL

    def uow(self) -> SqlUnitOfWork:
        return self._box.uow(self.principal.clinic_id, self.actor)


def caller_with(roles: frozenset[ClinicRole]) -> Callable[..., Caller]:
    checker = allow(roles)

    def build(request: Request, who: Annotated[Principal, Depends(checker)],
              box: Annotated[Container, Depends(container)]) -> Caller:
        return Caller(request, who, box)

    return build
