"""The disclosure (sharing) log (LGPD Art. 18 VII; 45 CFR 164.528): one row per sharing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from neonpro.domain.schemas._types import ReadSchema
from neonpro.domain.vocabulary import LegalBasis


class DisclosureRead(ReadSchema):
    id: uuid.UUID
    clinic_id: uuid.UUID
    patient_id: uuid.UUID
    disclosed_at: datetime
    recipient_name: str
    recipient_address: str | None
    data_description: str
    data_categories: list[str]
    purpose: str
    legal_basis: str
    consent_record_id: uuid.UUID | None
    disclosed_by: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True)
class NewDisclosure:
    patient_id: uuid.UUID
    disclosed_at: datetime
    recipient_name: str
    data_description: str
    purpose: str
    legal_basis: LegalBasis
    recipient_address: str | None = None
    data_categories: list[str] = field(default_factory=list)
    consent_record_id: uuid.UUID | None = None


@dataclass(frozen=True)
class DisclosureFilters:
    patient_id: uuid.UUID | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
