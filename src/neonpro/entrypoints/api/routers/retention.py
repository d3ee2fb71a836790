"""Retention policies over HTTP: create, list, retire (admin and DPO).

A policy below the legal floor of its kind of record is a 422 ``below_legal_floor`` naming
the floor; a retired policy stays as history (``?include_retired=true``).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from neonpro.entrypoints.api.deps import OVERSIGHT, Caller, caller_with
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import retention as svc
from neonpro.services.retention import PolicyCreate, PolicyRead

router = APIRouter(route_class=OneHopRoute, prefix="/lgpd/retention-policies", tags=["lgpd"])
Oversight = Annotated[Caller, Depends(caller_with(OVERSIGHT))]


@router.post("", response_model=PolicyRead, status_code=status.HTTP_201_CREATED)
def create(body: PolicyCreate, caller: Oversight) -> PolicyRead:
    """A new policy for the caller's clinic: one active per category and trigger (retire
    the old one first); refused below the legal floor (clinical records: 20 years)."""
    return svc.create_policy(caller.uow(), body)


@router.get("", response_model=list[PolicyRead])
def list_(caller: Oversight,
          include_retired: Annotated[bool, Query()] = False) -> list[PolicyRead]:
    """The clinic's active policies, or the whole history with ``include_retired``."""
    return svc.list_policies(caller.uow(), include_retired=include_retired)


@router.post("/{policy_id}/retire", response_model=PolicyRead)
def retire(policy_id: uuid.UUID, caller: Oversight) -> PolicyRead:
    """Stop applying a policy; it stays as history. 409 when already retired."""
    return svc.retire_policy(caller.uow(), policy_id)
