"""The consent ledger: append-only proof of what a patient agreed to (LGPD Art. 8).

One row per patient, purpose and state. History is never rewritten: a grant,
a revocation, an expiry or a renewal is a *new* row whose ``supersedes_id``
points at the row it changes, so the old state stays readable. The unique
``(clinic_id, supersedes_id)`` makes the chain linear: two concurrent
revocations of the same row cannot both commit. The current state of a
(patient, purpose) is decided by the latest decision (grant or revocation) in ledger order
(``entry_no``), computed by ``neonpro_consent_state`` (``consent_sql.py``) for every
reader. ``patients.data_consent_status`` only summarises it.

The database enforces it (no UPDATE or DELETE granted, guard triggers for everyone), and
each clinic's rows are chained and keyed like the audit trail (``evidence`` left out: the
law may require removing the channel's identifiers), so ``neonpro audit verify`` detects a
row edited, removed or slipped in even by the owner.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TenantMixin, table_args, uuid_pk
from neonpro.adapters.db.models._checks import (
    SHA256_HEX,
    ck_array_in,
    ck_in,
    ck_regex,
)
from neonpro.adapters.db.models._columns import (
    Chained,
    actor_column,
    chain_args,
    pii,
    tenant_fk,
)
from neonpro.domain.vocabulary import AnonymizationRule as Anon
from neonpro.domain.vocabulary import (
    CollectionMethod,
    ConsentPurpose,
    ConsentStatus,
    DataCategory,
    LegalBasis,
)

ENTRY_NO_COMMENT = ("ledger order, assigned at insert by neonpro_consent_entry_no: the latest "
                    "decision per patient and purpose wins")


class ConsentRecord(Chained, TenantMixin, Base):
    """One state of one consent (append-only; see the module docstring)."""

    __tablename__ = "consent_records"
    __table_args__ = table_args(
        "tenant",
        tenant_fk("patient_id", "patients", nullable=False),
        # a row changes a consent of its own patient (another patient's would take that
        # consent's one successor: it could never be revoked); the convention's name would
        # pass 63 characters
        ForeignKeyConstraint(
            ["clinic_id", "patient_id", "supersedes_id"],
            ["consent_records.clinic_id", "consent_records.patient_id", "consent_records.id"],
            ondelete="SET NULL (supersedes_id)",
            name="fk_consent_records_same_patient_consent_records",
        ),
        UniqueConstraint("clinic_id", "supersedes_id"),
        # the key a reference to "this patient's consent" needs (supersedes_id, disclosures)
        UniqueConstraint("clinic_id", "patient_id", "id"),
        Index(None, "clinic_id", "patient_id", "purpose", "created_at"),
        Index(None, "clinic_id", "patient_id", "purpose", "entry_no"),
        ck_in("purpose", ConsentPurpose),
        ck_in("legal_basis", LegalBasis),
        ck_in("status", ConsentStatus),
        ck_in("collection_method", CollectionMethod),
        ck_array_in("data_categories", DataCategory),
        ck_regex("terms_hash", SHA256_HEX),
        CheckConstraint(
            "status <> 'granted' OR given_at IS NOT NULL", name="granted_needs_given_at"
        ),
        CheckConstraint(
            "status <> 'revoked' OR revoked_at IS NOT NULL", name="revoked_needs_revoked_at"
        ),
        CheckConstraint("revoked_at >= given_at", name="revoked_after_given"),
        CheckConstraint("expires_at > given_at", name="expires_after_given"),
        CheckConstraint("supersedes_id <> id", name="not_superseding_itself"),
        *chain_args("consent_records", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    given_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    collection_method: Mapped[str | None] = mapped_column(Text)
    terms_version: Mapped[str] = mapped_column(Text)
    terms_hash: Mapped[str] = mapped_column(
        Text, comment="SHA-256 (lowercase hex) of the exact terms text shown"
    )
    evidence: Mapped[dict[str, Any]] = mapped_column(
        JSONB,
        default=dict,
        server_default=text("'{}'::jsonb"),
        **pii(DataCategory.CONSENT, Anon.GENERALIZE, "keep channel and signature ref, drop ip"),
    )
    data_categories: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, server_default=text("'{}'")
    )
    collected_by: Mapped[uuid.UUID | None] = actor_column()
    supersedes_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), sort_order=900)
    entry_no: Mapped[int] = mapped_column(BigInteger, comment=ENTRY_NO_COMMENT, sort_order=901)
