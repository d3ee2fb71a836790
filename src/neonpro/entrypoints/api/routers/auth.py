"""Sign in (email and password, argon2) and sign out; both audited."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, Field

from neonpro.adapters.auth import TokenCodec
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas._types import EmailStr
from neonpro.entrypoints.api.deps import EVERYONE, Caller, caller_with, codec, container
from neonpro.services import auth as svc

router = APIRouter(prefix="/auth", tags=["auth"])


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


@router.post("/login", response_model=TokenOut)
def login(data: Login, request: Request, box: Annotated[Container, Depends(container)],
          tokens: Annotated[TokenCodec, Depends(codec)]) -> TokenOut:
    """Exchange credentials for a bearer token. Repeated failures lock the account."""
    anonymous = Actor(uuid.UUID(int=0), "anonymous",
                      ip_address=request.client.host if request.client else None,
                      request_id=request.state.request_id,
                      user_agent=request.headers.get("user-agent"))
    settings = box.settings
    signed = svc.login(box.service_uow(anonymous), data.email, data.password, data.clinic_id,
                       max_failures=settings.login_max_failures,
                       lockout=timedelta(minutes=settings.login_lockout_minutes))
    token = tokens.issue(signed.user_id, signed.clinic_id, signed.role)
    return TokenOut(access_token=token, expires_in=settings.token_ttl_minutes * 60,
                    clinic_id=signed.clinic_id, role=signed.role.value)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(caller: Annotated[Caller, Depends(caller_with(EVERYONE))]) -> Response:
    """Record the sign-out (tokens are short-lived; discard yours)."""
    svc.logout(caller.uow(), caller.principal.token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

