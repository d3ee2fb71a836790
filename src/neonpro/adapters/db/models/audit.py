"""The audit trail: append-only, hash-chained per clinic.

``clinic_id`` here has no foreign key on purpose: the trail must outlive a
clinic, and events that belong to no clinic (backups, restores, failed logins
before a clinic is known) go to the system chain, ``clinic_id`` = the nil UUID
``00000000-0000-0000-0000-000000000000``. ``seq`` is gap-free per clinic
(allocated by the writer), ``prev_hash``/``hash`` chain each event to the
previous one. ``details`` is redacted: which fields changed, never their values.
No ``updated_at``: rows are never updated (the database refuses it).
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, table_args, uuid_pk
from neonpro.adapters.db.models._checks import ck_in
from neonpro.adapters.db.models._columns import actor_column, pii
from neonpro.domain.vocabulary import AnonymizationRule as Anon
from neonpro.domain.vocabulary import AuditAction, AuditStatus, RiskLevel
from neonpro.domain.vocabulary import DataCategory as Cat

SYSTEM_CLINIC_ID = uuid.UUID(int=0)
"""``clinic_id`` of the system chain (events that belong to no clinic)."""


class AuditEvent(Base):
    """One audited action. Primary key ``(clinic_id, id)``; ``(clinic_id, seq)`` unique."""

    __tablename__ = "audit_events"
    __table_args__ = table_args(
        "tenant",
        UniqueConstraint("clinic_id", "seq"),
        Index(None, "clinic_id", "occurred_at"),
        Index(None, "clinic_id", "actor_id", "occurred_at"),
        Index(None, "clinic_id", "patient_ref", "occurred_at"),
        Index(None, "clinic_id", "resource_type", "resource_id"),
        Index(None, "clinic_id", "action", "occurred_at"),
        ck_in("action", AuditAction),
        ck_in("status", AuditStatus),
        ck_in("risk_level", RiskLevel),
        CheckConstraint("seq >= 1", name="seq_positive"),
    )

    clinic_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        sort_order=-10,
        comment="tenant, or the nil UUID for the system chain; no FK on purpose",
    )
    id: Mapped[uuid.UUID] = uuid_pk()
    seq: Mapped[int] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor_id: Mapped[uuid.UUID | None] = actor_column()
    actor_role: Mapped[str | None] = mapped_column(Text)  # a ClinicRole or a system actor kind
    action: Mapped[str] = mapped_column(Text)
    resource_type: Mapped[str | None] = mapped_column(Text)
    resource_id: Mapped[str | None] = mapped_column(Text)  # text: ids may be non-uuid
    patient_ref: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="keyed hash of the patient id (never the raw id or CPF)"
    )
    status: Mapped[str] = mapped_column(
        Text, default=AuditStatus.SUCCESS.value, server_default=text("'success'")
    )
    risk_level: Mapped[str] = mapped_column(
        Text, default=RiskLevel.LOW.value, server_default=text("'low'")
    )
    # With psycopg, INET loads as ipaddress objects unless the engine sets native_inet_types=False.
    ip_address: Mapped[str | None] = mapped_column(
        INET, **pii(Cat.AUDIT, Anon.KEEP, "kept for the audit retention period")
    )
    user_agent: Mapped[str | None] = mapped_column(
        Text, **pii(Cat.AUDIT, Anon.KEEP, "kept for the audit retention period")
    )
    session_id: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    hash: Mapped[bytes | None] = mapped_column(LargeBinary)
