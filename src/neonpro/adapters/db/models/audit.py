"""The audit trail: append-only, hash-chained per clinic.

``clinic_id`` here has no foreign key on purpose: the trail must outlive a
clinic, and events that belong to no clinic (backups, restores, failed logins
before a clinic is known) go to the system chain, ``clinic_id`` = the nil UUID
``00000000-0000-0000-0000-000000000000``.

Writers insert events unsealed (``seq``, ``prev_hash``, ``hash``, ``key_id`` NULL), so no
audited transaction waits on a per-clinic lock. The sealer (a process holding the audit
key, through ``neonpro_chain_seal``, a short transaction per batch) assigns the gap-free
``seq`` in commit-visible order and chains ``hash = HMAC(audit key, canonical(event, seq,
prev_hash))`` naming the key by ``key_id``; the database never holds that key. The guard
trigger lets those columns go from NULL to a value once and refuses every other UPDATE
and every DELETE (except pruning below a signed cut). ``details`` is redacted: which
fields changed, never their values.
"""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    Index,
    LargeBinary,
    SmallInteger,
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
        Index(None, "clinic_id", "ip_address", "occurred_at"),
        Index("ix_audit_events_unsealed", "clinic_id", "occurred_at", "id",
              postgresql_where=text("seq IS NULL")),
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
    seq: Mapped[int | None] = mapped_column(BigInteger, comment="NULL until sealed")
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
    retain_until: Mapped[date] = mapped_column(
        Date, comment="set on insert from the action's retention category"
    )
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(
        Text, comment="the audit key of the hash (NULL: unkeyed, sealed before audit keys)")


class AuditChainCut(Base):
    """Where a clinic's chain was pruned: the last pruned event's seq and hash, signed
    (HMAC, key outside the database) so the remaining chain still verifies from here."""

    __tablename__ = "audit_chain_cuts"
    __table_args__ = table_args("tenant", CheckConstraint("seq >= 1", name="seq_positive"))

    clinic_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, sort_order=-10,
        comment="tenant, or the nil UUID for the system chain; no FK on purpose",
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[bytes] = mapped_column(LargeBinary)
    pruned_events: Mapped[int] = mapped_column(BigInteger)
    archive_sha256: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(Text, comment="HMAC-SHA256 of the cut, hex")
    cut_at: Mapped[datetime] = mapped_column(server_default=func.now())
    key_id: Mapped[str | None] = mapped_column(
        Text, comment="the audit key of the signature (NULL: the key of before key ids)")


class AuditChainAnchor(Base):
    """The head of a chain's unkeyed prefix (events sealed before audit keys), signed with
    an audit key when the keyed chain began (migration 0011): the events up to ``seq``
    verify by their plain hashes only because this signature vouches for ``hash``, and no
    unkeyed event may follow it."""

    __tablename__ = "audit_chain_anchors"
    __table_args__ = table_args("tenant", CheckConstraint("seq >= 1", name="seq_positive"))

    clinic_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, sort_order=-10,
        comment="tenant, or the nil UUID for the system chain; no FK on purpose",
    )
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(Text, comment="HMAC-SHA256 of the head, hex")
    anchored_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AuditRefKey(Base):
    """The key of ``patient_ref`` (HMAC-SHA256 of a patient id), kept as the HMAC inner and
    outer pads (key XOR 0x36 / 0x5c, 64 bytes) so plain ``sha256()`` computes the HMAC
    without pgcrypto. Readable only by the owner role, through the SECURITY DEFINER
    function ``neonpro_patient_ref``."""

    __tablename__ = "audit_ref_keys"
    __table_args__ = table_args("global", CheckConstraint("id = 1", name="single_row"))

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    inner_pad: Mapped[bytes] = mapped_column(LargeBinary)
    outer_pad: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
