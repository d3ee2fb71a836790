"""Sign in (email and password, argon2), sign out, change the password; all audited.

Every token has a session (services/auth.py): signing out, a password change or a
membership removed end it on the next request."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field

from neonpro.adapters.auth import TokenCodec
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.ports_auth import IssuedToken
from neonpro.domain.schemas._types import EmailStr
from neonpro.entrypoints.api.deps import EVERYONE, Caller, caller_with, codec, container
from neonpro.entrypoints.api.problems import responses
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import auth as svc

router = APIRouter(route_class=OneHopRoute, prefix="/auth", tags=["auth"])
THROTTLED = responses(429)


class Login(BaseModel):
    model_config = {"hide_input_in_errors": True, "extra": "forbid"}

    email: EmailStr
    password: str = Field(min_length=1, max_length=1024)
    clinic_id: uuid.UUID | None = Field(
        default=None, description="Needed when the account belongs to several clinics")


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105  (the OAuth token type, not a secret)
    expires_in: int
    clinic_id: uuid.UUID
    role: str


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _out(issued: IssuedToken, ttl_minutes: int) -> TokenOut:
    return TokenOut(access_token=issued.token, expires_in=ttl_minutes * 60,
                    clinic_id=issued.clinic_id, role=issued.role.value)


@router.post("/login", response_model=TokenOut, responses=THROTTLED)
def login(data: Login, request: Request, box: Annotated[Container, Depends(container)],
          tokens: Annotated[TokenCodec, Depends(codec)]) -> TokenOut:
    """Exchange credentials for a bearer token.

    Every failure is the same 401. Too many failed attempts from this address, for this
    e-mail, or both, answer 429 with `Retry-After`, before any password is checked."""
    anonymous = Actor(uuid.UUID(int=0), "anonymous", ip_address=_address(request),
                      request_id=request.state.request_id,
                      user_agent=request.headers.get("user-agent"))
    issued = svc.login(lambda: box.service_uow(anonymous), data.email, data.password,
                       data.clinic_id, _address(request), limits=box.signin_limits,
                       mint=tokens.mint, passwords=box.passwords)
    return _out(issued, box.settings.token_ttl_minutes)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(caller: Annotated[Caller, Depends(caller_with(EVERYONE))],
           box: Annotated[Container, Depends(container)]) -> Response:
    """End this token's session: it is refused from the next request on."""
    svc.logout(box.admin_uow(caller.principal.clinic_id, caller.actor),
               caller.principal.token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class PasswordChange(BaseModel):
    model_config = {"hide_input_in_errors": True, "extra": "forbid"}

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=svc.MIN_PASSWORD, max_length=1024)


@router.post("/password", response_model=TokenOut, responses=THROTTLED)
def change_password(data: PasswordChange, request: Request,
                    caller: Annotated[Caller, Depends(caller_with(EVERYONE))],
                    box: Annotated[Container, Depends(container)],
                    tokens: Annotated[TokenCodec, Depends(codec)]) -> TokenOut:
    """Change your password (the current one is required). Every session of the account
    ends, in every clinic; the answer is a new token for this clinic."""
    anonymous = Actor(uuid.UUID(int=0), "anonymous", ip_address=_address(request),
                      request_id=request.state.request_id,
                      user_agent=request.headers.get("user-agent"))
    issued = svc.change_password(
        lambda: box.service_uow(anonymous),
        box.admin_uow(caller.principal.clinic_id, caller.actor),
        data.current_password, data.new_password, _address(request),
        limits=box.signin_limits, mint=tokens.mint, passwords=box.passwords)
    return _out(issued, box.settings.token_ttl_minutes)
