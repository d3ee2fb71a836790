"""Data-subject requests (LGPD Art. 18) as stored: no personal data beyond the patient's id."""

from __future__ import annotations

import uuid
from datetime import datetime

from neonpro.domain.schemas._types import ReadSchema


class DataSubjectRequestRead(ReadSchema):
    """A data-subject request as stored (no personal data beyond the patient's id)."""

    id: uuid.UUID
    clinic_id: uuid.UUID
    patient_id: uuid.UUID
    kind: str
    status: str
    received_at: datetime
    due_at: datetime
    identity_verified_by: uuid.UUID | None
    identity_verified_at: datetime | None
    fulfilled_at: datetime | None
    refusal_reason: str | None
    response_sha256: str | None
    created_at: datetime
    updated_at: datetime
