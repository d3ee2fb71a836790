"""The audit chains as a port (``domain.ports_audit.AuditChain``): sealing, verifying,
checkpoints and pruning (``adapters/db/audit``, ``adapters/checkpoints.py``), and refusals
recorded on their own (``adapters/db/uow.record_refusal``).

Everything it uses comes from the composition root, reached only when needed (reading a
checkpoint file needs no database).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from neonpro.adapters.db import audit as chains
from neonpro.adapters.db.uow import record_refusal
from neonpro.domain.actors import Actor
from neonpro.domain.audit_reports import ChainReport, Checkpoint, CheckpointResult, PruneResult
from neonpro.domain.errors import DomainError
from neonpro.domain.vocabulary import RiskLevel

if TYPE_CHECKING:
    from neonpro.adapters.checkpoints import CheckpointWriter
    from neonpro.adapters.crypto import BlindIndexer, FieldCipher, KeyRing
    from neonpro.adapters.db.database import Database


class Wiring(Protocol):
    """What the chains need of the composition root (``bootstrap.Container``)."""

    @property
    def database(self) -> Database: ...
    @property
    def keyring(self) -> KeyRing: ...
    @property
    def cipher(self) -> FieldCipher: ...
    @property
    def blind_indexer(self) -> BlindIndexer: ...
    @property
    def checkpoints(self) -> CheckpointWriter: ...


class SqlAuditChain:
    """``AuditChain`` over the configured database and key ring."""

    def __init__(self, wiring: Wiring) -> None:
        self._box = wiring

    def seal(self, actor: Actor) -> int:
        return chains.seal_pending(self._box.database, self._box.keyring, actor)

    def read_checkpoints(self, path: Path) -> list[Checkpoint]:
        return chains.read_checkpoints(path)

    def verify(self, actor: Actor, clinic: uuid.UUID | None = None,
               checkpoints: list[Checkpoint] | None = None) -> list[ChainReport]:
        return chains.verify_chains(self._box.database, actor, self._box.keyring, clinic,
                                    checkpoints)

    def checkpoint(self, directory: Path | None = None,
                   path: Path | None = None) -> CheckpointResult:
        return self._box.checkpoints.take(directory, full=True, path=path)

    def prune(self, actor: Actor, archive_dir: Path, clinic: uuid.UUID | None = None, *,
              dry_run: bool = False) -> list[PruneResult]:
        return chains.prune_expired(self._box.database, self._box.keyring, actor, archive_dir,
                                    clinic, dry_run=dry_run)

    def record_refusal(self, actor: Actor, clinic_id: uuid.UUID | None, refusal: DomainError,
                       *, resource_type: str | None = None,
                       resource_id: uuid.UUID | None = None,
                       patient_id: uuid.UUID | None = None,
                       risk: RiskLevel = RiskLevel.MEDIUM,
                       details: dict[str, Any] | None = None) -> None:
        box = self._box
        record_refusal(box.database, box.cipher, box.blind_indexer, actor, clinic_id, refusal,
                       resource_type=resource_type, resource_id=resource_id,
                       patient_id=patient_id, risk=risk, details=details)
