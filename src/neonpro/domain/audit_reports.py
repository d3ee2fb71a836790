"""What the audit trail's use cases exchange: events to record, search filters and rows,
and the reports of sealing, verifying, checkpointing and pruning the chains.

Plain data: the adapters (``adapters/db/audit``, ``adapters/checkpoints.py``,
``queries/audit.py``) make and read them, the services and entry points pass them on.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from neonpro.domain.vocabulary import AuditAction, AuditResource

AUDIT = "audit_events"  # the audit trail's chain (the other: the ledgers')


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One event of a batch recorded at once (``AuditRecorder.record_many``)."""

    action: AuditAction
    resource_id: uuid.UUID | str | None = None
    patient_id: uuid.UUID | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True)
class AuditFilters:
    patient_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None
    ip_address: str | None = None
    action: str | None = None
    resource_type: AuditResource | None = None
    resource_id: str | None = None
    risk_levels: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


@dataclass
class ChainReport:
    clinic_id: uuid.UUID
    sealed: int = 0
    head_seq: int = 0
    head_hash: str | None = None
    unsealed: int = 0
    first_seq: int = 1
    broken_at: int | None = None
    reason: str | None = None
    checkpoint: str | None = None
    chain: str = AUDIT

    @property
    def ok(self) -> bool:
        return self.broken_at is None and self.reason is None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["clinic_id"] = str(self.clinic_id)
        out["ok"] = self.ok
        return out


@dataclass(frozen=True)
class Checkpoint:
    """One signed chain head. ``key_id`` None: a file of format v1 (audit chains only,
    signed with the key of before audit key ids)."""

    clinic_id: uuid.UUID
    seq: int
    hash: str
    signature: str
    chain: str = AUDIT
    key_id: str | None = None


@dataclass
class PruneResult:
    clinic_id: uuid.UUID
    upto_seq: int
    pruned: int
    archive: str
    archive_sha256: str


@dataclass(frozen=True)
class CheckpointResult:
    path: Path | None
    heads: int
