"""LGPD data-subject rights: requests (Art. 18, 19), confirmation, access/portability export."""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status

from neonpro.domain.vocabulary import DataSubjectRequestStatus
from neonpro.entrypoints.api.deps import OVERSIGHT, STAFF, Caller, caller_with
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import lgpd_requests as svc
from neonpro.services.lgpd_requests import (
    Confirmation,
    DataSubjectRequestRead,
    ExportFormat,
    RequestFulfil,
    RequestOpen,
    RequestRefuse,
)

router = APIRouter(route_class=OneHopRoute, prefix="/lgpd", tags=["lgpd"])
DESK = STAFF | OVERSIGHT
EXPORT_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export (exact bytes; their SHA-256 in `X-Content-SHA256`)",
        "content": {"application/json": {"schema": {"type": "object"}},
                    "application/fhir+json": {"schema": {"type": "object"}}},
    },
}


@router.post("/requests", status_code=status.HTTP_201_CREATED,
             response_model=DataSubjectRequestRead)
def open_request(data: RequestOpen,
                 caller: Annotated[Caller, Depends(caller_with(DESK))]) -> DataSubjectRequestRead:
    """Record a patient's request (any Art. 18 right); due 15 days after receipt."""
    return svc.open_request(caller.uow(), data)


@router.get("/requests", response_model=list[DataSubjectRequestRead])
def list_requests(
    caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))],
    overdue: bool = False,
    request_status: Annotated[DataSubjectRequestStatus | None, Query(alias="status")] = None,
    patient_id: uuid.UUID | None = None,
) -> list[DataSubjectRequestRead]:
    """The clinic's requests by due date; ``overdue=true``: still pending past their due date."""
    return svc.list_requests(caller.uow(), overdue=overdue, status=request_status,
                             patient_id=patient_id)


@router.get("/requests/{request_id}", response_model=DataSubjectRequestRead)
def get_request(request_id: uuid.UUID,
                caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))],
                ) -> DataSubjectRequestRead:
    return svc.get_request(caller.uow(), request_id)


@router.post("/requests/{request_id}/verify", response_model=DataSubjectRequestRead)
def verify(request_id: uuid.UUID,
           caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))]) -> DataSubjectRequestRead:
    """Record that you verified the requester's identity (needed before fulfilling)."""
    return svc.verify_identity(caller.uow(), request_id)


@router.post("/requests/{request_id}/start", response_model=DataSubjectRequestRead)
def start(request_id: uuid.UUID,
          caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))]) -> DataSubjectRequestRead:
    """open -> in_progress."""
    return svc.start_request(caller.uow(), request_id)


@router.post("/requests/{request_id}/fulfil", response_model=DataSubjectRequestRead)
def fulfil(request_id: uuid.UUID, caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))],
           data: RequestFulfil | None = None) -> DataSubjectRequestRead:
    """Close as answered; records the SHA-256 of the answer (or keeps the export's)."""
    return svc.fulfil_request(caller.uow(), request_id, data)


@router.post("/requests/{request_id}/refuse", response_model=DataSubjectRequestRead)
def refuse(request_id: uuid.UUID, data: RequestRefuse,
           caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))]) -> DataSubjectRequestRead:
    """Close as refused, with the reason given to the patient."""
    return svc.refuse_request(caller.uow(), request_id, data)


@router.get("/patients/{patient_id}/confirmation", response_model=Confirmation)
def confirmation(patient_id: uuid.UUID,
                 caller: Annotated[Caller, Depends(caller_with(DESK))]) -> Confirmation:
    """The immediate answer (Art. 19 I): whether, since when, which categories, which bases."""
    return svc.confirm_processing(caller.uow(), patient_id)


@router.get("/patients/{patient_id}/export", response_class=Response,
            responses=EXPORT_CONTENT)
def export(
    patient_id: uuid.UUID,
    caller: Annotated[Caller, Depends(caller_with(OVERSIGHT))],
    export_format: Annotated[ExportFormat, Query(alias="format")] = ExportFormat.JSON,
    request_id: uuid.UUID | None = None,
) -> Response:
    """Everything held about the patient (JSON, or a FHIR R4 Bundle); audited as EXPORT.
    With ``request_id`` the export's SHA-256 is stored on that request."""
    result = svc.export_patient(caller.uow(), patient_id, export_format, request_id=request_id)
    digest = base64.b64encode(hashlib.sha256(result.content).digest()).decode()
    return Response(content=result.content, media_type=result.media_type, headers={
        "Content-Disposition": f'attachment; filename="{result.filename}"',
        "X-Content-SHA256": result.sha256,
        "Repr-Digest": f"sha-256=:{digest}:",
        "Cache-Control": "no-store",
    })
