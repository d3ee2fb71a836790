"""Consent ledger schemas: a grant, a revocation, what the ledger returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from neonpro.domain.paging import Page
from neonpro.domain.schemas._types import Instant, ReadSchema, Schema, ShortText
from neonpro.domain.vocabulary import CollectionMethod, ConsentPurpose, DataCategory, LegalBasis


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


READ_FIELDS: tuple[str, ...] = tuple(ConsentRead.model_fields)
ConsentPage = Page[ConsentRead]
