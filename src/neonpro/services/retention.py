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
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field, model_validator
from sqlalchemy import text

from neonpro.adapters.db.repositories.retention import SqlRetentionPolicyRepository
from neonpro.adapters.db.uow import SqlUnitOfWork
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict, Forbidden, NotFound
from neonpro.domain.retention import check_floor, years_to_days
from neonpro.domain.schemas._types import ReadSchema, Schema
from neonpro.domain.vocabulary import (
    AuditAction,
    AuditResource,
    ClinicRole,
    DataCategory,
    RetentionAction,
    RetentionTrigger,
    RiskLevel,
)
from neonpro.services.erasure import erase_many_in

Progress = Callable[[int, int], None]
# who may create, list and retire a clinic's policies
POLICY_ROLES = frozenset({ClinicRole.ADMIN.value, ClinicRole.DPO.value})
MAX_PERIOD_DAYS = 36_525  # 100 years

_POLICIES = text(
    "SELECT id, clinic_id, data_category, trigger, period, action, legal_reference "
    "FROM retention_policies WHERE (CAST(:clinic AS uuid) IS NULL OR clinic_id = :clinic) "
    "AND action <> 'keep' AND retired_at IS NULL ORDER BY clinic_id, data_category, trigger")
_INACTIVE = text(
    "SELECT p.id FROM patients p WHERE p.clinic_id = :c AND p.anonymized_at IS NULL "
    "AND p.blocked_at IS NULL AND greatest(p.created_at, "
    "  coalesce(p.last_visit_date::timestamptz, p.created_at), "
    "  coalesce((SELECT max(a.start_time) FROM appointments a WHERE a.clinic_id = p.clinic_id "
    "            AND a.patient_id = p.id), p.created_at)) < :cutoff ORDER BY p.id")
_HOLD_EXPIRED = text(
    "SELECT p.id FROM patients p WHERE p.clinic_id = :c AND p.blocked_at IS NOT NULL "
    "AND p.anonymized_at IS NULL AND greatest(p.created_at, "
    "  coalesce(p.last_visit_date::timestamptz, p.created_at), "
    "  coalesce((SELECT max(coalesce(a.actual_end_time, a.start_time)) FROM appointments a "
    "            WHERE a.clinic_id = p.clinic_id AND a.patient_id = p.id), p.created_at)) "
    "  < :cutoff ORDER BY p.id")
_REVOKED = text(
    "SELECT c.id FROM consent_records c WHERE c.clinic_id = :c AND c.status = 'revoked' "
    "AND c.revoked_at < :cutoff AND c.purpose IN ('marketing', 'research', 'data_sharing', "
    "'image_use', 'telemedicine', 'insurance_sharing') "
    "AND c.evidence IS DISTINCT FROM '{\"removed\": \"retention\"}'::jsonb "
    "AND c.evidence IS DISTINCT FROM '{\"removed\": \"erasure\"}'::jsonb "  # erased since
    "ORDER BY c.id")


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


def plan_retention(container: Container, actor: Actor, clinic_id: uuid.UUID | None = None,
                   now: datetime | None = None) -> list[RetentionItem]:
    """What would happen, and why (nothing is changed)."""
    now = now or datetime.now(UTC)
    items: list[RetentionItem] = []
    with container.database.service_session(actor.id, actor.role) as s:
        for policy in s.execute(_POLICIES, {"clinic": clinic_id}).all():
            trigger = RetentionTrigger(policy.trigger)
            query, why = {
                RetentionTrigger.INACTIVITY: (_INACTIVE, "no activity for"),
                RetentionTrigger.LAST_CLINICAL_ENTRY: (_HOLD_EXPIRED, "last clinical entry over"),
                RetentionTrigger.CONSENT_REVOKED: (_REVOKED, "consent revoked over"),
            }.get(trigger, (None, ""))
            if query is None:
                continue
            cutoff = now - policy.period
            for (target,) in s.execute(query, {"c": policy.clinic_id, "cutoff": cutoff}).all():
                items.append(RetentionItem(
                    policy.clinic_id, policy.id, policy.data_category, policy.trigger,
                    policy.action, policy.legal_reference, target,
                    f"{why} {policy.period.days} days"))
    return items


def apply_retention(container: Container, actor: Actor, items: list[RetentionItem],
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
            uow = container.admin_uow(clinic, actor)
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


# the consent ledger is append-only: this is its one allowed change (audited, in the
# clinic's transaction; see audit_sql.py)
_REMOVE_EVIDENCE = text(
    "SELECT neonpro_remove_consent_evidence(CAST(:patients AS uuid[]), CAST(:ids AS uuid[]), "
    "'retention')")


def _apply_batch(uow: SqlUnitOfWork, chunk: list[RetentionItem],
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
        uow.connection.execute(_REMOVE_EVIDENCE, {"patients": [], "ids": revoked})
    return [outcomes[n] if n in outcomes else done[item.target]
            for n, item in enumerate(chunk)]


# --------------------------------------------------------------------- policy management
# Policies keep their history: created, listed, retired; never changed nor deleted (the
# table's guard trigger refuses it). A new period for a category and trigger is a new
# policy, once the active one is retired.


class PolicyCreate(Schema):
    data_category: DataCategory
    trigger: RetentionTrigger
    action: RetentionAction
    period_days: int | None = Field(default=None, ge=0, le=MAX_PERIOD_DAYS)
    period_years: int | None = Field(default=None, ge=0, le=100)
    legal_reference: str = Field(min_length=3, max_length=300)

    @model_validator(mode="after")
    def _one_period(self) -> PolicyCreate:
        if (self.period_days is None) == (self.period_years is None):
            raise ValueError("give exactly one of period_days and period_years")
        return self

    @property
    def days(self) -> int:
        if self.period_days is not None:
            return self.period_days
        assert self.period_years is not None  # noqa: S101  (checked by _one_period)
        return years_to_days(self.period_years)


class PolicyRead(ReadSchema):
    id: uuid.UUID
    clinic_id: uuid.UUID
    data_category: str
    trigger: str
    action: str
    period_days: int
    legal_reference: str
    created_at: datetime
    created_by: uuid.UUID | None
    retired_at: datetime | None
    retired_by: uuid.UUID | None

    @property
    def active(self) -> bool:
        return self.retired_at is None


def _policy(row: Any) -> PolicyRead:
    period: timedelta = row.period
    return PolicyRead(id=row.id, clinic_id=row.clinic_id, data_category=row.data_category,
                      trigger=row.trigger, action=row.action, period_days=period.days,
                      legal_reference=row.legal_reference, created_at=row.created_at,
                      created_by=row.created_by, retired_at=row.retired_at,
                      retired_by=row.retired_by)


def _allowed(uow: SqlUnitOfWork) -> None:
    """Inside the open unit of work, so that a refusal is audited (``PERMISSION_DENIED``)."""
    if uow.actor.role not in POLICY_ROLES:
        raise Forbidden(f"the {uow.actor.role} role may not manage retention policies")


def _details(policy: PolicyRead, **extra: Any) -> dict[str, Any]:
    # no legal reference: it is free text
    return {"data_category": policy.data_category, "trigger": policy.trigger,
            "action": policy.action, "period_days": policy.period_days, **extra}


def create_policy(uow: SqlUnitOfWork, data: PolicyCreate) -> PolicyRead:
    """A new policy of the clinic (admin or DPO), refused below the legal floor of its kind
    of record (``BelowLegalFloor``, 422) or while an active one has the same category and
    trigger (``Conflict``: retire that one first); audited."""
    with uow:
        _allowed(uow)
        check_floor(data.data_category, data.trigger, data.action, data.days)
        repo = SqlRetentionPolicyRepository(uow)
        category, trigger = data.data_category.value, data.trigger.value
        if repo.active_id(category, trigger) is not None:
            raise Conflict(f"an active {category}/{trigger} policy exists: retire it first",
                           "trigger")
        policy = _policy(repo.insert(category, trigger, data.action.value, data.days,
                                     data.legal_reference))
        uow.audit.record(AuditAction.CREATE, AuditResource.RETENTION_POLICIES, policy.id,
                         risk=RiskLevel.MEDIUM, details=_details(policy))
        uow.commit()
    return policy


def list_policies(uow: SqlUnitOfWork, *, include_retired: bool = False) -> list[PolicyRead]:
    """The clinic's policies (admin or DPO): active ones, or with ``include_retired`` the
    whole history."""
    with uow:
        _allowed(uow)
        rows = SqlRetentionPolicyRepository(uow).list(include_retired=include_retired)
        uow.commit()
    return [_policy(r) for r in rows]


def retire_policy(uow: SqlUnitOfWork, policy_id: uuid.UUID) -> PolicyRead:
    """Retire a policy (admin or DPO): the retention engine no longer applies it, the row
    stays as history; audited. ``NotFound`` in another clinic, ``Conflict`` when already
    retired."""
    with uow:
        _allowed(uow)
        repo = SqlRetentionPolicyRepository(uow)
        current = repo.lock(policy_id)
        if current is None:
            raise NotFound("retention policy", policy_id)
        if current.retired_at is not None:
            raise Conflict(f"retention policy {policy_id} is already retired")
        policy = _policy(repo.retire(policy_id))
        uow.audit.record(AuditAction.UPDATE, AuditResource.RETENTION_POLICIES, policy.id,
                         risk=RiskLevel.MEDIUM, details=_details(policy, retired=True))
        uow.commit()
    return policy
