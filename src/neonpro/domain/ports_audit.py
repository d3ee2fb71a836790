"""The audit trail's ports: the chains (sealed, verified, checkpointed, pruned, refusals
recorded) and the trail's reports on a unit of work.

``services/audit.py`` works over them; ``adapters/audit_chain.py`` implements
:class:`AuditChain` (the composition root's ``audit_chain``) and
``adapters/db/repositories/trail.py`` :class:`AuditReports` (``uow.audit_reports``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from neonpro.domain.actors import Actor
from neonpro.domain.audit_reports import (
    AuditFilters,
    ChainReport,
    Checkpoint,
    CheckpointResult,
    PruneResult,
)
from neonpro.domain.errors import DomainError
from neonpro.domain.paging import Page
from neonpro.domain.schemas.audit import AuditEvent
from neonpro.domain.vocabulary import RiskLevel


class AuditChain(Protocol):
    """The tamper-evident chains, worked by the process that holds the audit keys."""

    def seal(self, actor: Actor) -> int:
        """Seal every pending entry of every chain now; how many were sealed."""
        ...
    def read_checkpoints(self, path: Path) -> list[Checkpoint]:
        """Signed heads in a file, a directory of them, or syslog lines (OSError,
        ValueError, KeyError or TypeError when they cannot be read)."""
        ...
    def verify(self, actor: Actor, clinic: uuid.UUID | None = None,
               checkpoints: list[Checkpoint] | None = None) -> list[ChainReport]:
        """Recompute every chain (or one clinic's), each checked against ``checkpoints``."""
        ...
    def checkpoint(self, directory: Path | None = None,
                   path: Path | None = None) -> CheckpointResult:
        """Sign every chain's head and write it out (a file, and the other sinks)."""
        ...
    def prune(self, actor: Actor, archive_dir: Path, clinic: uuid.UUID | None = None, *,
              dry_run: bool = False) -> list[PruneResult]:
        """Archive and delete each chain's expired prefix, leaving a signed cut."""
        ...
    def record_refusal(self, actor: Actor, clinic_id: uuid.UUID | None, refusal: DomainError,
                       *, resource_type: str | None = None,
                       resource_id: uuid.UUID | None = None,
                       patient_id: uuid.UUID | None = None,
                       risk: RiskLevel = RiskLevel.MEDIUM,
                       details: dict[str, Any] | None = None) -> None:
        """``refusal`` as a ``PERMISSION_DENIED`` event committed on its own, and marked
        audited."""
        ...


class AuditReports(Protocol):
    """Read-side reports over the unit of work's clinic's audit trail."""

    def search(self, filters: AuditFilters, limit: int = 50,
               cursor: str | None = None) -> Page[AuditEvent]:
        """Newest first, keyset pages; cursors sealed to the clinic and the filters."""
        ...
    def compliance(self, since: datetime, until: datetime,
                   chain: dict[str, Any]) -> dict[str, Any]:
        """The compliance report of ``[since, until)`` with ``chain`` (a verify report)."""
        ...
