"""The erasure ledger: every erasure decision, so a restore can re-apply it.

Append-only (guard triggers refuse UPDATE, DELETE and TRUNCATE, owner included) and
chained per clinic like the audit trail: entries are inserted unsealed and the sealer
gives each its ``seq`` and keyed ``hash`` (``domain.audit_chain.canonical_ledger``), so
``neonpro audit verify`` detects an entry edited, removed or slipped in. ``patient_id``
has no foreign key on purpose: a patient deleted outright leaves the entry behind.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TenantMixin, table_args, uuid_pk
from neonpro.adapters.db.models._columns import Chained, actor_column, chain_args


class ErasureLedgerEntry(Chained, TenantMixin, Base):
    """One erasure: the per-category decisions (action and legal reference) and who made it."""

    __tablename__ = "erasure_ledger"
    __table_args__ = table_args(
        "tenant",
        Index(None, "clinic_id", "decided_at"),
        # an erasure's request, a patient's entries (a deletion request is fulfilled only
        # once its patient has one): revision 0021
        Index(None, "clinic_id", "request_id", postgresql_where=text("request_id IS NOT NULL")),
        Index(None, "clinic_id", "patient_id"),
        *chain_args("erasure_ledger", "decided_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), comment="the patient erased; no FK (a deleted patient leaves this)")
    # a request of this clinic and patient: checked by trigger, not by a foreign key (a
    # restore re-applies entries whose request it never held; erasure_sql.request_ddl)
    request_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), comment="the data-subject request, if any")
    decided_at: Mapped[datetime] = mapped_column(server_default=func.now())
    decided_by: Mapped[uuid.UUID | None] = actor_column()
    outcome: Mapped[str] = mapped_column(Text, comment="blocked, anonymized or deleted")
    decisions: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"),
        comment="category -> {action, legal_reference}; never personal values")
