"""The clinic's staff: who is a member, and removing one (admin only).

Removing a member ends their sessions in this clinic on their next request."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from neonpro.bootstrap import Container
from neonpro.domain.schemas.clinic import MembershipRead
from neonpro.entrypoints.api.deps import ADMIN, Caller, caller_with, container
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import auth as svc

router = APIRouter(route_class=OneHopRoute, prefix="/staff", tags=["staff"])


@router.get("", response_model=list[MembershipRead])
def list_members(caller: Annotated[Caller, Depends(caller_with(ADMIN))],
                 box: Annotated[Container, Depends(container)]) -> list[MembershipRead]:
    """The clinic's memberships, active and removed."""
    return svc.members(box.admin_uow(caller.principal.clinic_id, caller.actor))


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(user_id: uuid.UUID, caller: Annotated[Caller, Depends(caller_with(ADMIN))],
                  box: Annotated[Container, Depends(container)]) -> Response:
    """Remove a member from the clinic: their tokens for it are refused from the next
    request on. 404 if not an active member; 409 for the clinic's last active admin."""
    svc.remove_member(box.admin_uow(caller.principal.clinic_id, caller.actor), user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
