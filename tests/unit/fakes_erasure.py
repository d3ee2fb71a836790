"""In-memory fakes of the erasure and retention repositories, of the four unit-of-work
flavours (``UnitsOfWork``) and of the sealing cipher, for the LGPD services' tests.

Erasure works on the fake patients (``store["patients"]``): a block sets ``blocked_at``,
an anonymization ``anonymized_at`` (and clears ``blocked_at`` for an expired hold). What
the rules need of a patient is ``store["erasure_facts"]`` (nothing clinical by default).
The ledger is ``store["erasure_ledger"]``, in insertion order. Retention policies are
``store["retention_policies"]``; what each policy makes due is given by the test in
``store["retention_due"]`` (policy id -> targets), the SQL's concern.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from neonpro.domain.actors import Actor
from neonpro.domain.erasure import Action, Decision, LedgerDecision, PatientFacts, in_order
from neonpro.domain.errors import NotFound
from neonpro.domain.schemas.patient import PatientRead
from neonpro.domain.schemas.retention import PolicyInForce, PolicyRead
from tests.unit.fakes_base import TenantRows, utcnow

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork


@dataclass(frozen=True)
class LedgerRow:
    clinic_id: uuid.UUID
    patient_id: uuid.UUID
    outcome: str
    decisions: tuple[Decision, ...]
    request_id: uuid.UUID | None
    decided_at: datetime


class FakeErasures(TenantRows):
    table = "patients"
    entity = "patient"

    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow)
        self.facts_of: dict[uuid.UUID, PatientFacts] = uow.store.setdefault("erasure_facts", {})
        self.ledger: dict[uuid.UUID, LedgerRow] = uow.store.setdefault("erasure_ledger", {})

    def facts(self, patient_id: uuid.UUID) -> PatientFacts:
        return self.facts_many([patient_id])[patient_id]

    def facts_many(self, patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, PatientFacts]:
        for patient_id in patient_ids:
            self.get(patient_id)  # NotFound: not the clinic's
        return {p: self.facts_of.get(p, PatientFacts(has_clinical_record=False,
                                                     has_consent_records=False))
                for p in patient_ids}

    def apply_many(self, patient_ids: Sequence[uuid.UUID], decisions: list[Decision], *,
                   unblock: bool = False) -> None:
        now = utcnow()
        blocked = any(d.action is Action.BLOCK for d in decisions)
        for patient_id in patient_ids:
            row: PatientRead = self.get(patient_id)
            changes: dict[str, Any] = {"version": row.version + 1}
            if blocked:
                changes["blocked_at"] = now
            else:
                changes.update(anonymized_at=now, is_active=False)
                if unblock:
                    changes["blocked_at"] = None
            self._replace(patient_id, changes)

    def record_many(self, entries: Sequence[tuple[uuid.UUID, list[Decision], str]],
                    request_id: uuid.UUID | None = None) -> list[uuid.UUID]:
        ids = []
        for patient_id, decisions, outcome in entries:
            entry = uuid.uuid4()
            self.ledger[entry] = LedgerRow(self.clinic_id, patient_id, outcome,
                                           tuple(decisions), request_id, utcnow())
            ids.append(entry)
        return ids

    def is_request_of(self, request_id: uuid.UUID, patient_id: uuid.UUID) -> bool:
        request = self.uow.store.get("data_subject_requests", {}).get(request_id)
        return (request is not None and request.clinic_id == self.clinic_id
                and request.patient_id == patient_id)

    def has_entry(self, patient_id: uuid.UUID) -> bool:
        return any(r.clinic_id == self.clinic_id and r.patient_id == patient_id
                   for r in self.ledger.values())

    def decisions_for_request(self, request_id: uuid.UUID) -> list[Decision] | None:
        rows = [r for r in self.ledger.values()
                if r.clinic_id == self.clinic_id and r.request_id == request_id]
        return in_order(list(min(rows, key=lambda r: r.decided_at).decisions)) if rows else None

    def is_blocked(self, patient_id: uuid.UUID) -> bool | None:
        try:
            row: PatientRead = self.get(patient_id)
        except NotFound:
            return None
        return row.blocked_at is not None

    def to_reapply(self, since: datetime | None = None,
                   clinic_id: uuid.UUID | None = None) -> list[LedgerDecision]:
        latest: dict[tuple[uuid.UUID, uuid.UUID], LedgerRow] = {}
        for row in self.ledger.values():  # insertion order: the last one wins
            if (since is None or row.decided_at >= since) and clinic_id in (None, row.clinic_id):
                latest[(row.clinic_id, row.patient_id)] = row
        due = []
        for row in latest.values():
            patient = self.rows.get(row.patient_id)
            if patient is None or patient.anonymized_at is not None:
                continue
            if row.outcome != "blocked" or patient.blocked_at is None:
                due.append(LedgerDecision(row.clinic_id, row.patient_id, row.outcome))
        return due


class FakeRetentionPolicies(TenantRows):
    table = "retention_policies"
    entity = "retention policy"

    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__(uow)
        self.targets: dict[uuid.UUID, list[uuid.UUID]] = uow.store.setdefault(
            "retention_due", {})
        self.evidence_removed: dict[uuid.UUID, str] = uow.store.setdefault(
            "evidence_removed", {})

    def active_id(self, category: str, trigger: str) -> uuid.UUID | None:
        return next((r.id for r in self._mine() if r.data_category == category
                     and r.trigger == trigger and r.retired_at is None), None)

    def insert(self, category: str, trigger: str, action: str, days: int,
               reference: str) -> PolicyRead:
        row = PolicyRead(id=uuid.uuid4(), clinic_id=self.clinic_id, data_category=category,
                         trigger=trigger, action=action, period_days=days,
                         legal_reference=reference, created_at=utcnow(),
                         created_by=self.uow.actor.id, retired_at=None, retired_by=None)
        self.rows[row.id] = row
        return row

    def list(self, *, include_retired: bool) -> builtins.list[PolicyRead]:
        return sorted((r for r in self._mine() if include_retired or r.retired_at is None),
                      key=lambda r: (r.data_category, r.trigger, r.created_at))

    def lock(self, policy_id: uuid.UUID) -> PolicyRead | None:
        try:
            row: PolicyRead = self.get(policy_id)
        except NotFound:
            return None
        return row

    def retire(self, policy_id: uuid.UUID) -> PolicyRead:
        row: PolicyRead = self._replace(policy_id, {"retired_at": utcnow(),
                                                    "retired_by": self.uow.actor.id})
        return row

    def in_force(self, clinic_id: uuid.UUID | None = None) -> builtins.list[PolicyInForce]:
        return [PolicyInForce(r.id, r.clinic_id, r.data_category, r.trigger,
                              timedelta(days=r.period_days), r.action, r.legal_reference)
                for r in sorted(self.rows.values(),
                                key=lambda r: (str(r.clinic_id), r.data_category, r.trigger))
                if clinic_id in (None, r.clinic_id) and r.action != "keep"
                and r.retired_at is None]

    def due(self, policy: PolicyInForce, cutoff: datetime) -> builtins.list[uuid.UUID]:
        return list(self.targets.get(policy.id, []))

    def remove_consent_evidence(self, consent_ids: Sequence[uuid.UUID]) -> None:
        self.evidence_removed.update(dict.fromkeys(consent_ids, "retention"))


class FakeUnits:
    """``UnitsOfWork`` over one shared store: every unit of work it opens is kept in
    ``opened`` as (flavour, unit of work)."""

    def __init__(self, store: dict[str, Any] | None = None) -> None:
        self.store: dict[str, Any] = {} if store is None else store
        self.opened: list[tuple[str, FakeUnitOfWork]] = []

    def _open(self, flavour: str, clinic_id: uuid.UUID | None, actor: Actor, *,
              service: bool = False) -> FakeUnitOfWork:
        from tests.unit.fakes import FakeUnitOfWork  # noqa: PLC0415  (fakes imports this)

        uow = FakeUnitOfWork(actor, clinic_id, store=self.store, service=service)
        self.opened.append((flavour, uow))
        return uow

    def uow(self, clinic_id: uuid.UUID, actor: Actor) -> FakeUnitOfWork:
        return self._open("uow", clinic_id, actor)

    def admin_uow(self, clinic_id: uuid.UUID, actor: Actor) -> FakeUnitOfWork:
        return self._open("admin_uow", clinic_id, actor, service=True)

    def legal_hold_uow(self, clinic_id: uuid.UUID, actor: Actor) -> FakeUnitOfWork:
        return self._open("legal_hold_uow", clinic_id, actor)

    def service_uow(self, actor: Actor) -> FakeUnitOfWork:
        return self._open("service_uow", None, actor, service=True)


class FakeSealer:
    """Reversible, bound to its context: a blob opened elsewhere fails, as AES-GCM's."""

    def encrypt(self, plaintext: str, *, table: str, column: str, row_id: uuid.UUID) -> bytes:
        return f"{table}|{column}|{row_id}|{plaintext}".encode()

    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: uuid.UUID) -> str:
        prefix = f"{table}|{column}|{row_id}|"
        text = blob.decode()
        if not text.startswith(prefix):
            msg = "sealed for another context"
            raise ValueError(msg)
        return text[len(prefix):]
