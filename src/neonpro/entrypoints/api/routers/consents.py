"""Consents: grant, revoke, history, each purpose's state, and the compliance check."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel

from neonpro.domain.schemas.consent import (
    ConsentCreate,
    ConsentRead,
    ConsentRevoke,
    ConsentState,
)
from neonpro.domain.vocabulary import ConsentPurpose
from neonpro.entrypoints.api.deps import EVERYONE, OVERSIGHT, STAFF, Caller, caller_with
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import consents as svc

router = APIRouter(route_class=OneHopRoute, tags=["consents"])


class FindingOut(BaseModel):
    kind: str
    risk: str
    consent_id: uuid.UUID
    patient_id: uuid.UUID
    purpose: str


@router.post("/consents", status_code=status.HTTP_201_CREATED, response_model=ConsentRead)
def grant(data: ConsentCreate,
          caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> ConsentRead:
    """Record a consent with its terms version and hash, channel, collector and evidence."""
    return svc.grant_consent(caller.uow(), data)


@router.post("/consents/{consent_id}/revoke", response_model=ConsentRead)
def revoke(consent_id: uuid.UUID, caller: Annotated[Caller, Depends(caller_with(STAFF))],
           data: ConsentRevoke | None = None) -> ConsentRead:
    """Revoke at once; the grant stays readable in the history."""
    return svc.revoke_consent(caller.uow(), consent_id, data)


@router.get("/patients/{patient_id}/consents", response_model=list[ConsentRead])
def history(patient_id: uuid.UUID, caller: Annotated[Caller, Depends(caller_with(EVERYONE))],
            purpose: ConsentPurpose | None = None) -> list[ConsentRead]:
    return svc.consent_history(caller.uow(), patient_id, purpose)


@router.get("/patients/{patient_id}/consent-state", response_model=list[ConsentState])
def state(patient_id: uuid.UUID,
          caller: Annotated[Caller, Depends(caller_with(EVERYONE))]) -> list[ConsentState]:
    """The state of each purpose the patient decided on: its latest decision (a grant or a
    revocation, in ledger order) wins; the consent gate, the patient's summary, the LGPD
    confirmation and the exports read the same."""
    return svc.consent_states(caller.uow(), patient_id)


@router.get("/consents/compliance", response_model=list[FindingOut])
def compliance(caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))]) -> list[FindingOut]:
    """Expired, unbounded, sensitive-without-expiry and too-old consents, with a risk each."""
    return [FindingOut(kind=f.kind, risk=f.risk.value, consent_id=f.consent_id,
                       patient_id=f.patient_id, purpose=f.purpose)
            for f in svc.check_compliance(caller.uow())]
