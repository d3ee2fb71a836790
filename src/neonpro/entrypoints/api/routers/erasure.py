"""Erasure decided by law over HTTP: the plan, carrying it out, and the audited legal-hold
read of a blocked record (admin and DPO)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from neonpro.domain.erasure import Decision
from neonpro.domain.schemas.appointment import AppointmentRead
from neonpro.domain.schemas.patient import PatientRead
from neonpro.entrypoints.api.deps import OVERSIGHT, Caller, caller_with
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import erasure as svc

router = APIRouter(route_class=OneHopRoute, prefix="/lgpd/patients/{patient_id}/erasure",
                   tags=["lgpd"])
held_router = APIRouter(route_class=OneHopRoute,
                        prefix="/lgpd/patients/{patient_id}/legal-hold", tags=["lgpd"])


class DecisionOut(BaseModel):
    category: str
    action: str
    legal_reference: str


class ErasureOut(BaseModel):
    patient_id: uuid.UUID
    outcome: str
    ledger_id: uuid.UUID
    decisions: list[DecisionOut]


class ErasureIn(BaseModel):
    model_config = {"extra": "forbid"}
    request_id: uuid.UUID | None = None


def _out(decisions: list[Decision]) -> list[DecisionOut]:
    return [DecisionOut(category=d.category.value, action=d.action.value,
                        legal_reference=d.legal_reference) for d in decisions]


@router.get("", response_model=list[DecisionOut])
def plan(patient_id: uuid.UUID,
         caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))]) -> list[DecisionOut]:
    """What the law dictates for each category of this patient's data (nothing changes)."""
    return _out(svc.plan_erasure(caller.uow(), patient_id))


@router.post("", response_model=ErasureOut)
def erase(patient_id: uuid.UUID, caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))],
          body: ErasureIn | None = None) -> ErasureOut:
    """Delete or anonymize what no law requires keeping; block the medical record."""
    done = svc.erase_patient(caller.admin_uow(), patient_id, body.request_id if body else None)
    return ErasureOut(patient_id=done.patient_id, outcome=done.outcome,
                      ledger_id=done.ledger_id, decisions=_out(done.decisions))


class LegalHoldReadIn(BaseModel):
    model_config = {"extra": "forbid"}
    justification: str = Field(
        max_length=svc.JUSTIFICATION_MAX * 4,  # trimmed and bounded again by the service
        description=f"why the blocked record must be read (a court order, a claim, the "
                    f"patient's own request...), {svc.JUSTIFICATION_MIN} to "
                    f"{svc.JUSTIFICATION_MAX} characters; kept encrypted in the audit trail")


class LegalHoldReadOut(BaseModel):
    patient: PatientRead
    appointments: list[AppointmentRead]


@held_router.post("/read", response_model=LegalHoldReadOut)
def legal_hold_read(patient_id: uuid.UUID, body: LegalHoldReadIn,
                    caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))],
                    ) -> LegalHoldReadOut:
    """Read a record blocked under a legal hold (admin and DPO, with a justification).

    The read is audited first as a high-risk `LEGAL_HOLD_READ` (the justification
    encrypted). 404 when the clinic has no such patient, 409 `not_blocked` when the patient
    is not blocked (read it through `/patients/{id}`)."""
    box = caller.container
    held = svc.legal_hold_read(box, box.cipher, caller.clinic_id, patient_id, caller.actor,
                               body.justification)
    return LegalHoldReadOut(patient=held.patient, appointments=held.appointments)
