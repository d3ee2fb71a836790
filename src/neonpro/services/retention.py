"""The retention engine: each clinic's policies applied in batches, idempotently, audited.

Policies (``retention_policies``) name a data category, a trigger, a period, an action and
a legal reference. What a policy may do is still bounded by the law: an ``anonymize`` or
``delete`` of a patient whose medical record is under its 20-year hold ends as a block
(the erasure engine decides), and a clinical policy can only act once that hold ran out.

* ``inactivity``: patients with no visit, booking or registration within the period.
* ``last_clinical_entry``: blocked records whose last clinical entry is older than the
  period (at least 20 years for clinical data, enforced by the table): anonymized.
* ``consent_revoked``: revoked consent-based ledger rows older than the period lose the
  channel identifiers of their evidence (the proof itself is kept).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict, Forbidden, NotFound
from neonpro.domain.ports import UnitOfWork, UnitsOfWork
from neonpro.domain.retention import check_floor
from neonpro.domain.schemas.retention import MAX_PERIOD_DAYS, PolicyCreate, PolicyRead
from neonpro.domain.vocabulary import (
    AuditAction,
    AuditResource,
    ClinicRole,
    RetentionAction,
    RetentionTrigger,
    RiskLevel,
)
from neonpro.services.erasure import erase_many_in

__all__ = ["MAX_PERIOD_DAYS", "POLICY_ROLES", "PolicyCreate", "PolicyRead", "RetentionItem",
           "RetentionReport", "apply_retention", "create_policy", "list_policies",
           "plan_retention", "retire_policy"]

Progress = Callable[[int, int], None]
# who may create, list and retire a clinic's policies
POLICY_ROLES = frozenset({ClinicRole.ADMIN.value, ClinicRole.DPO.value})


@dataclass(frozen=True)
class RetentionItem:
    clinic_id: uuid.UUID
    policy_id: uuid.UUID
    category: str
    trigger: str
    action: str
    legal_reference: str
    target: uuid.UUID  # a patient, or a consent row for consent_revoked
    reason: str


@dataclass
class RetentionReport:
    planned: int = 0
    applied: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)


WHY = {RetentionTrigger.INACTIVITY: "no activity for",
       RetentionTrigger.LAST_CLINICAL_ENTRY: "last clinical entry over",
       RetentionTrigger.CONSENT_REVOKED: "consent revoked over"}


def plan_retention(units: UnitsOfWork, actor: Actor, clinic_id: uuid.UUID | None = None,
                   now: datetime | None = None) -> list[RetentionItem]:
    """What would happen, and why (nothing is changed)."""
    now = now or datetime.now(UTC)
    items: list[RetentionItem] = []
    with units.service_uow(actor) as uow:
        policies = uow.retention_policies
        for policy in policies.in_force(clinic_id):
            why = WHY.get(RetentionTrigger(policy.trigger))
            if why is None:
                continue
            items.extend(RetentionItem(
                policy.clinic_id, policy.id, policy.data_category, policy.trigger,
                policy.action, policy.legal_reference, target,
                f"{why} {policy.period.days} days")
                for target in policies.due(policy, now - policy.period))
        uow.rollback()  # a read
    return items


def apply_retention(units: UnitsOfWork, actor: Actor, items: list[RetentionItem],
                    batch: int = 1000, progress: Progress | None = None) -> RetentionReport:
    """Carry out a plan in batches (one transaction each, set-based SQL per batch);
    running it twice changes nothing the second time, since the plan only selects what is
    still to do. Every patient still gets its own audited decisions and ledger entry."""
    report = RetentionReport(planned=len(items))
    by_clinic: dict[uuid.UUID, list[RetentionItem]] = {}
    for item in items:
        by_clinic.setdefault(item.clinic_id, []).append(item)
    done: dict[uuid.UUID, str] = {}  # patients erased in this run (two policies, one erasure)
    for clinic, work in by_clinic.items():
        for start in range(0, len(work), batch):
            chunk = work[start:start + batch]
            uow = units.admin_uow(clinic, actor)
            with uow:
                for outcome in _apply_batch(uow, chunk, done):
                    report.by_outcome[outcome] = report.by_outcome.get(outcome, 0) + 1
                uow.audit.record(AuditAction.RETENTION, AuditResource.RETENTION_POLICIES,
                                 details={"items": len(chunk), "policy_batch": start // batch})
                uow.commit()
            report.applied += len(chunk)
            if progress is not None:
                progress(report.applied, report.planned)
    return report


def _apply_batch(uow: UnitOfWork, chunk: list[RetentionItem],
                 done: dict[uuid.UUID, str]) -> list[str]:
    """The outcome of each item of ``chunk`` (in order), carried out with one statement per
    kind of work rather than one per item."""
    outcomes: dict[int, str] = {}
    revoked: list[uuid.UUID] = []
    queued: dict[uuid.UUID, bool] = {}  # patient -> hold expired? (insertion-ordered)
    for n, item in enumerate(chunk):
        trigger = RetentionTrigger(item.trigger)
        if trigger is RetentionTrigger.CONSENT_REVOKED:
            revoked.append(item.target)
            outcomes[n] = "consent_evidence_removed"
        elif RetentionAction(item.action) is RetentionAction.KEEP:
            outcomes[n] = "kept"
        elif item.target not in done:
            # a patient due under two policies is erased once; an expired hold wins
            expired = trigger is RetentionTrigger.LAST_CLINICAL_ENTRY
            queued[item.target] = queued.get(item.target, False) or expired
    erase: dict[bool, list[uuid.UUID]] = {}
    for patient, expired in queued.items():
        erase.setdefault(expired, []).append(patient)
    for hold_expired, patients in erase.items():
        for result in erase_many_in(uow, patients, hold_expired=hold_expired):
            done[result.patient_id] = result.outcome
    if revoked:  # after the erasures, as when items ran one by one in plan order
        uow.retention_policies.remove_consent_evidence(revoked)
    return [outcomes[n] if n in outcomes else done[item.target]
            for n, item in enumerate(chunk)]


# --------------------------------------------------------------------- policy management
# Policies keep their history: created, listed, retired; never changed nor deleted (the
# table's guard trigger refuses it). A new period for a category and trigger is a new
# policy, once the active one is retired (the schemas: domain/schemas/retention.py).


def _allowed(uow: UnitOfWork) -> None:
    """Inside the open unit of work, so that a refusal is audited (``PERMISSION_DENIED``)."""
    if uow.actor.role not in POLICY_ROLES:
        raise Forbidden(f"the {uow.actor.role} role may not manage retention policies")


def _details(policy: PolicyRead, **extra: Any) -> dict[str, Any]:
    # no legal reference: it is free text
    return {"data_category": policy.data_category, "trigger": policy.trigger,
            "action": policy.action, "period_days": policy.period_days, **extra}


def create_policy(uow: UnitOfWork, data: PolicyCreate) -> PolicyRead:
    """A new policy of the clinic (admin or DPO), refused below the legal floor of its kind
    of record (``BelowLegalFloor``, 422) or while an active one has the same category and
    trigger (``Conflict``: retire that one first); audited."""
    with uow:
        _allowed(uow)
        check_floor(data.data_category, data.trigger, data.action, data.days)
        repo = uow.retention_policies
        category, trigger = data.data_category.value, data.trigger.value
        if repo.active_id(category, trigger) is not None:
            raise Conflict(f"an active {category}/{trigger} policy exists: retire it first",
                           "trigger")
        policy = repo.insert(category, trigger, data.action.value, data.days,
                             data.legal_reference)
        uow.audit.record(AuditAction.CREATE, AuditResource.RETENTION_POLICIES, policy.id,
                         risk=RiskLevel.MEDIUM, details=_details(policy))
        uow.commit()
    return policy


def list_policies(uow: UnitOfWork, *, include_retired: bool = False) -> list[PolicyRead]:
    """The clinic's policies (admin or DPO): active ones, or with ``include_retired`` the
    whole history."""
    with uow:
        _allowed(uow)
        policies = uow.retention_policies.list(include_retired=include_retired)
        uow.commit()
    return policies


def retire_policy(uow: UnitOfWork, policy_id: uuid.UUID) -> PolicyRead:
    """Retire a policy (admin or DPO): the retention engine no longer applies it, the row
    stays as history; audited. ``NotFound`` in another clinic, ``Conflict`` when already
    retired."""
    with uow:
        _allowed(uow)
        repo = uow.retention_policies
        current = repo.lock(policy_id)
        if current is None:
            raise NotFound("retention policy", policy_id)
        if current.retired_at is not None:
            raise Conflict(f"retention policy {policy_id} is already retired")
        policy = repo.retire(policy_id)
        uow.audit.record(AuditAction.UPDATE, AuditResource.RETENTION_POLICIES, policy.id,
                         risk=RiskLevel.MEDIUM, details=_details(policy, retired=True))
        uow.commit()
    return policy
