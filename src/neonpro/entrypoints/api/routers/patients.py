"""Patients: register, read (audited), correct, soft delete, search."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from neonpro.domain.paging import Direction, Page, PageRequest
from neonpro.domain.schemas.patient import (
    PatientCreate,
    PatientFilters,
    PatientRead,
    PatientSort,
    PatientSortField,
    PatientUpdate,
)
from neonpro.domain.vocabulary import ConsentStatusSummary
from neonpro.entrypoints.api.deps import ADMIN, EVERYONE, STAFF, Caller, caller_with
from neonpro.entrypoints.api.pages import PageOut, page_request, to_page
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import patients as svc

router = APIRouter(route_class=OneHopRoute, prefix="/patients", tags=["patients"])
CLINICAL_FIELDS = ("patient_notes", "internal_notes", "chronic_conditions",
                   "current_medications")
EMPTY: dict[str, object] = {"patient_notes": None, "internal_notes": None, "chronic_conditions": [],
         "current_medications": []}


def shown(patient: PatientRead, caller: Caller) -> PatientRead:
    """Receptionists and DPOs see no clinical notes."""
    return patient if caller.sees_clinical else patient.model_copy(update=EMPTY)


def _guard_clinical(fields: set[str], caller: Caller) -> None:
    refused = fields.intersection(CLINICAL_FIELDS)
    if refused and not caller.sees_clinical:
        raise caller.forbid(f"the {caller.role.value} role may not write clinical fields",
                            fields=sorted(refused))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PatientRead)
def register(data: PatientCreate,
             caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> PatientRead:
    """Register a patient (CPF/CNS validated, stored encrypted)."""
    _guard_clinical({k for k, v in data.model_dump().items() if v}, caller)
    return shown(svc.register_patient(caller.uow(), data), caller)


@router.get("", response_model=PageOut[PatientRead])
def search(
    caller: Annotated[Caller, Depends(caller_with(EVERYONE))],
    page: Annotated[PageRequest, Depends(page_request)],
    name: Annotated[str | None, Query(max_length=100)] = None,
    active: bool | None = True,
    consent_status: ConsentStatusSummary | None = None,
    professional_id: uuid.UUID | None = None,
    sort: PatientSortField = PatientSortField.CREATED_AT,
    direction: Direction = Direction.ASC,
) -> PageOut[PatientRead]:
    """Search by name (accent- and case-insensitive) and filters; offset or cursor pages."""
    filters = PatientFilters(name=name, is_active=active, consent_status=consent_status,
                             primary_professional_id=professional_id)
    result: Page[PatientRead] = svc.search_patients(caller.uow(), filters,
                                                    PatientSort(sort, direction), page)
    return to_page(result, [shown(p, caller) for p in result.items])


@router.get("/{patient_id}", response_model=PatientRead)
def read(patient_id: uuid.UUID,
         caller: Annotated[Caller, Depends(caller_with(EVERYONE))]) -> PatientRead:
    """One patient's record; every read is audited with the caller and address."""
    return shown(svc.get_patient(caller.uow(), patient_id), caller)


@router.patch("/{patient_id}", response_model=PatientRead)
def correct(patient_id: uuid.UUID, data: PatientUpdate,
            caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> PatientRead:
    """Change the given fields; ``version`` must be the one you read (else 409)."""
    _guard_clinical(set(data.changes()), caller)
    return shown(svc.update_patient(caller.uow(), patient_id, data), caller)


@router.delete("/{patient_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete(patient_id: uuid.UUID, caller: Annotated[Caller, Depends(caller_with(ADMIN))],
           version: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None) -> Response:
    """Soft delete: hidden from every read, kept as a medical record."""
    svc.delete_patient(caller.uow(), patient_id, version)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
