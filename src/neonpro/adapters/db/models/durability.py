"""Commit tokens and idempotency keys: what lets a client and the server know, after a fault,
whether a write happened (docs/reliability.md).

* ``commit_tokens``: every write transaction inserts a random token just before COMMIT, in
  the same round trip that asks whether it wrote anything. When the acknowledgement of the
  COMMIT is lost, finding the token on another connection proves the transaction committed;
  a transaction id cannot (the server reuses an id whose commit record a crash discarded).
  Insert-only for the application role; kept ten minutes (the lookup happens within the
  request's deadline), pruned by the API's housekeeping.
* ``idempotency_keys``: the ``Idempotency-Key`` of a POST, PATCH or DELETE, per clinic: who
  holds it now (``claim``), whether its work committed (set by the work's own transaction,
  so it cannot disagree with it) and the answer, encrypted with the field keys. Kept 24 hours
  at least; an erasure scrubs the answers that name the erased patient.
"""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, LargeBinary, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TenantMixin, table_args
from neonpro.adapters.db.models._columns import actor_column

IDEMPOTENCY_STATES = ("in_flight", "committed", "done")


class CommitToken(Base):
    """A write transaction's proof of commit: a random token no other transaction can have."""

    __tablename__ = "commit_tokens"
    __table_args__ = table_args("tenant")

    clinic_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, sort_order=-10,
        comment="tenant, or the nil UUID for cross-clinic work; no FK on purpose")
    token: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, comment="random (uuid4), made by the client")
    committed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class IdempotencyKey(TenantMixin, Base):
    """One ``Idempotency-Key`` of one clinic: its claim, whether its work committed, its answer.

    The key itself is not stored: ``key_hash`` is its SHA-256. The answer may hold personal
    data (a patient's record answered to a registration), so it is encrypted like the other
    sensitive columns and scrubbed when a patient it names is erased.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = table_args(
        "tenant",
        Index(None, "expires_at"),
        CheckConstraint(
            "state IN (" + ", ".join(f"'{s}'" for s in IDEMPOTENCY_STATES) + ")",
            name="state"),
    )

    key_hash: Mapped[bytes] = mapped_column(
        LargeBinary, primary_key=True, comment="SHA-256 of the client's key")
    request_hash: Mapped[bytes] = mapped_column(
        LargeBinary, comment="SHA-256 of method, path, query, body and the caller")
    actor_id: Mapped[uuid.UUID | None] = actor_column()
    claim: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), comment="the attempt that holds the key now")
    state: Mapped[str] = mapped_column(
        Text, comment="in_flight; committed (by the work's own transaction); done (answered)")
    server_started: Mapped[datetime] = mapped_column(
        comment="pg_postmaster_start_time() at the claim: a restart ends every attempt")
    lease_until: Mapped[datetime] = mapped_column(
        comment="an in-flight claim older than this is abandoned and may be taken over")
    request_id: Mapped[str | None] = mapped_column(
        Text, comment="request id of the attempt whose work committed (its audit events)")
    status_code: Mapped[int | None] = mapped_column(Integer)
    content_type: Mapped[str | None] = mapped_column(Text)
    body_encrypted: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="the answer, AES-256-GCM with the field keys (may hold personal "
                             "data); NULL once scrubbed")
    patient_ids: Mapped[list[uuid.UUID]] = mapped_column(
        ARRAY(UUID(as_uuid=True)), server_default=text("'{}'"),
        comment="patients the answer names: their erasure scrubs it")
    scrubbed_at: Mapped[datetime | None] = mapped_column(
        comment="the answer was removed by an erasure")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(comment="kept at least 24 hours")
