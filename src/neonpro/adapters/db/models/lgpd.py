"""LGPD bookkeeping: data-subject requests, retention policies, disclosures, incidents."""

import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import (
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    Interval,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TenantMixin, TimestampMixin, table_args, uuid_pk
from neonpro.adapters.db.models._checks import (
    SHA256_HEX,
    ck_array_in,
    ck_in,
    ck_non_negative,
    ck_regex,
)
from neonpro.adapters.db.models._columns import Chained, actor_column, chain_args, tenant_fk
from neonpro.domain.vocabulary import (
    DataCategory,
    DataSubjectRequestKind,
    DataSubjectRequestStatus,
    IncidentStatus,
    LegalBasis,
    RetentionAction,
    RetentionTrigger,
    RiskLevel,
)

EMPTY_ARRAY = text("'{}'")


def _categories() -> Mapped[list[str]]:
    return mapped_column(ARRAY(Text), default=list, server_default=EMPTY_ARRAY)


class DataSubjectRequest(TenantMixin, TimestampMixin, Base):
    """A patient's request under LGPD Art. 18, tracked to its due date and outcome.

    Patients are blocked or anonymized, never hard-deleted while a request
    references them, hence the RESTRICT reference.
    """

    __tablename__ = "data_subject_requests"
    __table_args__ = table_args(
        "tenant",
        tenant_fk("patient_id", "patients", nullable=False),
        Index(None, "clinic_id", "patient_id", "received_at"),
        Index(None, "clinic_id", "status", "due_at"),
        ck_in("kind", DataSubjectRequestKind),
        ck_in("status", DataSubjectRequestStatus),
        ck_regex("response_sha256", SHA256_HEX),
        CheckConstraint("due_at > received_at", name="due_after_received"),
        CheckConstraint(
            "status <> 'fulfilled' OR fulfilled_at IS NOT NULL", name="fulfilled_needs_date"
        ),
        CheckConstraint(
            "status <> 'refused' OR refusal_reason IS NOT NULL", name="refused_needs_reason"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    kind: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    identity_verified_by: Mapped[uuid.UUID | None] = actor_column()
    identity_verified_at: Mapped[datetime | None]
    due_at: Mapped[datetime]  # Art. 19 II: 15 days after receipt for a full answer
    status: Mapped[str] = mapped_column(
        Text, default=DataSubjectRequestStatus.OPEN.value, server_default=text("'open'")
    )
    fulfilled_at: Mapped[datetime | None]
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    response_sha256: Mapped[str | None] = mapped_column(
        Text, comment="SHA-256 (lowercase hex) of the answer sent to the patient"
    )


class RetentionPolicy(TenantMixin, TimestampMixin, Base):
    """What happens to a data category, how long after which trigger, and on what legal ground.

    Policies keep their history: a policy is never changed nor deleted, it is retired
    (``retired_at``, ``retired_by``, once) and a new one created; one active policy per
    category and trigger. A guard trigger holds every role to it (``retention_sql.py``).
    """

    __tablename__ = "retention_policies"
    __table_args__ = table_args(
        "tenant",
        Index("uq_retention_policies_active", "clinic_id", "data_category", "trigger",
              unique=True, postgresql_where=text("retired_at IS NULL")),
        ck_in("data_category", DataCategory),
        ck_in("trigger", RetentionTrigger),
        ck_in("action", RetentionAction),
        CheckConstraint("period >= interval '0'", name="period_non_negative"),
        # Lei 13.787/2018 Art. 6: clinical records are kept at least 20 years.
        CheckConstraint(
            "data_category <> 'clinical' OR action = 'keep' OR period >= interval '20 years'",
            name="clinical_legal_hold",
        ),
        CheckConstraint("(retired_at IS NULL) = (retired_by IS NULL)", name="retired_by_whom"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    data_category: Mapped[str] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(Text)
    period: Mapped[timedelta] = mapped_column(Interval)
    action: Mapped[str] = mapped_column(Text)
    legal_reference: Mapped[str] = mapped_column(Text)  # e.g. "Lei 13.787/2018 art. 6"
    created_by: Mapped[uuid.UUID | None] = actor_column()
    retired_at: Mapped[datetime | None]
    retired_by: Mapped[uuid.UUID | None] = actor_column()


class Disclosure(Chained, TenantMixin, Base):
    """The sharing log: with whom a patient's data was shared (append-only, chained)."""

    __tablename__ = "disclosures"
    __table_args__ = table_args(
        "tenant",
        tenant_fk("patient_id", "patients", nullable=False),
        # the consent a disclosure rests on is a consent of the same patient in the same
        # clinic; the convention's name would pass 63 characters
        ForeignKeyConstraint(
            ["clinic_id", "patient_id", "consent_record_id"],
            ["consent_records.clinic_id", "consent_records.patient_id", "consent_records.id"],
            ondelete="SET NULL (consent_record_id)",
            name="fk_disclosures_same_patient_consent_records",
        ),
        Index(None, "clinic_id", "patient_id", "disclosed_at"),
        Index(None, "clinic_id", "disclosed_at"),
        ck_in("legal_basis", LegalBasis),
        ck_array_in("data_categories", DataCategory),
        *chain_args("disclosures", "created_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    disclosed_at: Mapped[datetime] = mapped_column(server_default=func.now())
    recipient_name: Mapped[str] = mapped_column(Text)  # an organisation, or a person
    recipient_address: Mapped[str | None] = mapped_column(Text)
    data_description: Mapped[str] = mapped_column(Text)
    data_categories: Mapped[list[str]] = _categories()
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    consent_record_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    disclosed_by: Mapped[uuid.UUID | None] = actor_column()
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), sort_order=900)


class SecurityIncident(TenantMixin, TimestampMixin, Base):
    """A security incident (Art. 48; ANPD Res. 15/2024), reported or not; kept 5+ years."""

    __tablename__ = "security_incidents"
    __table_args__ = table_args(
        "tenant",
        Index(None, "clinic_id", "status", "detected_at"),
        Index(None, "clinic_id", "notification_due_at"),
        ck_array_in("affected_data_categories", DataCategory),
        ck_non_negative("affected_patient_count"),
        ck_in("risk_level", RiskLevel),
        ck_in("status", IncidentStatus),
        CheckConstraint("closed_at >= detected_at", name="closed_after_detected"),
        CheckConstraint(
            "status <> 'closed' OR closed_at IS NOT NULL", name="closed_needs_closed_at"
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    detected_at: Mapped[datetime]
    learned_at: Mapped[datetime]  # when the clinic learned of it: starts the 3 business days
    description: Mapped[str] = mapped_column(
        Text, comment="no personal data: describe categories and counts"
    )
    affected_data_categories: Mapped[list[str]] = _categories()
    affected_patient_count: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0")
    )
    risk_assessment: Mapped[str | None] = mapped_column(Text)
    # Health data always counts as high risk, hence the default.
    risk_level: Mapped[str] = mapped_column(
        Text, default=RiskLevel.HIGH.value, server_default=text("'high'")
    )
    notified_anpd_at: Mapped[datetime | None]
    notified_subjects_at: Mapped[datetime | None]
    notification_due_at: Mapped[datetime | None]  # 3 business days after learned_at
    mitigation: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(
        Text, default=IncidentStatus.OPEN.value, server_default=text("'open'")
    )
    closed_at: Mapped[datetime | None]
    retain_until: Mapped[date | None]  # at least 5 years
    reported_by: Mapped[uuid.UUID | None] = actor_column()
