"""Consent ledger schemas: a grant, a revocation, what the ledger returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from neonpro.domain.paging import Page
from neonpro.domain.schemas._types import Instant, ReadSchema, Schema, ShortText
from neonpro.domain.vocabulary import (
    CollectionMethod,
    ConsentPurpose,
    ConsentStatusSummary,
    DataCategory,
    LegalBasis,
)


class ConsentCreate(Schema):
    """A consent (or another legal basis) recorded for one patient and one purpose."""

    patient_id: uuid.UUID
    purpose: ConsentPurpose
    legal_basis: LegalBasis = LegalBasis.CONSENT
    terms_version: ShortText
    terms_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the text shown")
    collection_method: CollectionMethod
    expires_at: Instant | None = None
    evidence: dict[str, Any] = Field(default_factory=dict)
    data_categories: list[DataCategory] = Field(default_factory=list, max_length=20)


class ConsentRevoke(Schema):
    evidence: dict[str, Any] = Field(default_factory=dict)


class ConsentRead(ReadSchema):
    id: uuid.UUID
    clinic_id: uuid.UUID
    patient_id: uuid.UUID
    purpose: str
    legal_basis: str
    status: str
    given_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None
    collection_method: str | None
    terms_version: str
    terms_hash: str
    evidence: dict[str, Any]
    data_categories: list[str]
    collected_by: uuid.UUID | None
    supersedes_id: uuid.UUID | None
    created_at: datetime


class ConsentState(ReadSchema):
    """The state of one purpose of one patient: its latest decision (a grant or a
    revocation, in ledger order) wins. Computed by the database (``neonpro_consent_state``)
    for the gate, the patient's summary, confirmation, exports and compliance alike."""

    patient_id: uuid.UUID
    purpose: str
    state: ConsentStatusSummary  # given, expired or withdrawn (no row: pending)
    decision: str  # granted or revoked
    decision_id: uuid.UUID  # the ledger row of the decision
    entry_no: int
    decided_at: datetime | None
    legal_basis: str
    terms_version: str
    given_at: datetime | None
    expires_at: datetime | None
    data_categories: list[str]
    expiry_recorded: bool

    @property
    def in_force(self) -> bool:
        return self.state == ConsentStatusSummary.GIVEN


READ_FIELDS: tuple[str, ...] = tuple(ConsentRead.model_fields)
STATE_FIELDS: tuple[str, ...] = tuple(ConsentState.model_fields)
ConsentPage = Page[ConsentRead]
