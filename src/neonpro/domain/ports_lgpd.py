"""The ports of the erasure and retention services: their repositories on the unit of work
(``uow.erasures``, ``uow.retention_policies``) and the cipher that seals free text kept in
the audit trail.

``adapters/db/repositories/erasure.py`` and ``retention.py`` implement the repositories,
``adapters/crypto.FieldCipher`` the :class:`Sealer`.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from neonpro.domain.erasure import Decision, LedgerDecision, PatientFacts
from neonpro.domain.schemas.retention import PolicyInForce, PolicyRead


class Sealer(Protocol):
    """Authenticated encryption of a text bound to where it is kept (table, column, row)."""

    def encrypt(self, plaintext: str, *, table: str, column: str, row_id: uuid.UUID) -> bytes: ...
    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: uuid.UUID) -> str: ...


class ErasureRepository(Protocol):
    """Erasure decisions carried out in the unit of work's clinic, and the erasure ledger."""

    def facts(self, patient_id: uuid.UUID) -> PatientFacts: ...
    def facts_many(self, patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, PatientFacts]:
        """What the rules need of each patient; ``NotFound`` when one is not the clinic's."""
        ...
    def apply_many(self, patient_ids: Sequence[uuid.UUID], decisions: list[Decision], *,
                   unblock: bool = False) -> None:
        """Carry out the same decisions for each patient (``unblock``: an expired hold)."""
        ...
    def record_many(self, entries: Sequence[tuple[uuid.UUID, list[Decision], str]],
                    request_id: uuid.UUID | None = None) -> list[uuid.UUID]:
        """One ledger entry per (patient, decisions, outcome); their ids, in order."""
        ...
    def is_request_of(self, request_id: uuid.UUID, patient_id: uuid.UUID) -> bool:
        """Whether ``request_id`` is a data-subject request of the patient, in this clinic."""
        ...
    def is_blocked(self, patient_id: uuid.UUID) -> bool | None:
        """Whether the clinic's patient is blocked (None: no such patient)."""
        ...
    def has_entry(self, patient_id: uuid.UUID) -> bool:
        """Whether the erasure ledger holds an entry for the clinic's patient (erased, on
        whatever grounds)."""
        ...
    def decisions_for_request(self, request_id: uuid.UUID) -> list[Decision] | None:
        """The decisions of the first ledger entry naming ``request_id`` as its grounds (the
        one that answered it), in the engine's order (None: no erasure was made for it)."""
        ...
    def to_reapply(self, since: datetime | None = None,
                   clinic_id: uuid.UUID | None = None) -> list[LedgerDecision]:
        """Each patient's latest ledger decision (made at or after ``since``, in
        ``clinic_id`` or any clinic) whose row is not erased as it says, oldest first."""
        ...


class RetentionPolicyRepository(Protocol):
    """The clinic's retention policies (kept as history), and what they make due."""

    def active_id(self, category: str, trigger: str) -> uuid.UUID | None: ...
    def insert(self, category: str, trigger: str, action: str, days: int,
               reference: str) -> PolicyRead: ...
    def list(self, *, include_retired: bool) -> builtins.list[PolicyRead]: ...
    def lock(self, policy_id: uuid.UUID) -> PolicyRead | None:
        """The policy, locked for this transaction (None: not the clinic's)."""
        ...
    def retire(self, policy_id: uuid.UUID) -> PolicyRead: ...
    def in_force(self, clinic_id: uuid.UUID | None = None) -> builtins.list[PolicyInForce]:
        """Active policies that change something, of ``clinic_id`` or of every clinic."""
        ...
    def due(self, policy: PolicyInForce, cutoff: datetime) -> builtins.list[uuid.UUID]:
        """What ``policy`` makes due with ``cutoff`` (now minus its period): patients, or
        revoked consent rows; none for a trigger the engine does not apply."""
        ...
    def remove_consent_evidence(self, consent_ids: Sequence[uuid.UUID]) -> None:
        """Drop the channel identifiers of revoked consents' evidence (the proof stays)."""
        ...
