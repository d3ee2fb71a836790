"""Retention policies in SQL: inserted, listed and retired, never changed nor deleted (the
table's guard trigger holds every role to it: ``retention_sql.py``); and what the policies
in force make due, for the retention engine (``services/retention.py``)."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, TextClause, text

from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.schemas.retention import PolicyInForce, PolicyRead
from neonpro.domain.vocabulary import RetentionTrigger

INSERT = text(
    "INSERT INTO retention_policies (clinic_id, data_category, trigger, action, period, "
    "legal_reference, created_by) VALUES (:clinic, :category, :trigger, :action, "
    "make_interval(days => :days), :reference, :actor) RETURNING id, clinic_id, "
    "data_category, trigger, action, period, legal_reference, created_at, created_by, "
    "retired_at, retired_by")
ACTIVE = text(
    "SELECT id FROM retention_policies WHERE clinic_id = :clinic AND data_category = "
    ":category AND trigger = :trigger AND retired_at IS NULL")
LIST = text(
    "SELECT id, clinic_id, data_category, trigger, action, period, legal_reference, "
    "created_at, created_by, retired_at, retired_by FROM retention_policies "
    "WHERE clinic_id = :clinic "
    "AND (CAST(:everything AS boolean) OR retired_at IS NULL) "
    "ORDER BY data_category, trigger, created_at, id")
LOCK = text(
    "SELECT id, clinic_id, data_category, trigger, action, period, legal_reference, "
    "created_at, created_by, retired_at, retired_by FROM retention_policies "
    "WHERE clinic_id = :clinic AND id = :id FOR UPDATE")
RETIRE = text(
    "UPDATE retention_policies SET retired_at = now(), retired_by = :actor "
    "WHERE clinic_id = :clinic AND id = :id AND retired_at IS NULL RETURNING id, clinic_id, "
    "data_category, trigger, action, period, legal_reference, created_at, created_by, "
    "retired_at, retired_by")

IN_FORCE = text(
    "SELECT id, clinic_id, data_category, trigger, period, action, legal_reference "
    "FROM retention_policies WHERE (CAST(:clinic AS uuid) IS NULL OR clinic_id = :clinic) "
    "AND action <> 'keep' AND retired_at IS NULL ORDER BY clinic_id, data_category, trigger")
# the clinic named as a value in the subqueries too (not joined to the outer row): Citus
# routes a query to one shard only when every distributed table in it is (bench/citus.py
# found these fanning out to every shard)
INACTIVE = text(
    "SELECT p.id FROM patients p WHERE p.clinic_id = :c AND p.anonymized_at IS NULL "
    "AND p.blocked_at IS NULL AND greatest(p.created_at, "
    "  coalesce(p.last_visit_date::timestamptz, p.created_at), "
    "  coalesce((SELECT max(a.start_time) FROM appointments a WHERE a.clinic_id = :c "
    "            AND a.patient_id = p.id), p.created_at)) < :cutoff ORDER BY p.id")
HOLD_EXPIRED = text(
    "SELECT p.id FROM patients p WHERE p.clinic_id = :c AND p.blocked_at IS NOT NULL "
    "AND p.anonymized_at IS NULL AND greatest(p.created_at, "
    "  coalesce(p.last_visit_date::timestamptz, p.created_at), "
    "  coalesce((SELECT max(coalesce(a.actual_end_time, a.start_time)) FROM appointments a "
    "            WHERE a.clinic_id = :c AND a.patient_id = p.id), p.created_at)) "
    "  < :cutoff ORDER BY p.id")
REVOKED = text(
    "SELECT c.id FROM consent_records c WHERE c.clinic_id = :c AND c.status = 'revoked' "
    "AND c.revoked_at < :cutoff AND c.purpose IN ('marketing', 'research', 'data_sharing', "
    "'image_use', 'telemedicine', 'insurance_sharing') "
    "AND c.evidence IS DISTINCT FROM '{\"removed\": \"retention\"}'::jsonb "
    "AND c.evidence IS DISTINCT FROM '{\"removed\": \"erasure\"}'::jsonb "  # erased since
    "ORDER BY c.id")
DUE: dict[RetentionTrigger, TextClause] = {
    RetentionTrigger.INACTIVITY: INACTIVE,
    RetentionTrigger.LAST_CLINICAL_ENTRY: HOLD_EXPIRED,
    RetentionTrigger.CONSENT_REVOKED: REVOKED,
}
# the consent ledger is append-only: this is its one allowed change (audited, in the
# clinic's transaction; see audit_sql.py)
REMOVE_EVIDENCE = text(
    "SELECT neonpro_remove_consent_evidence(CAST(:patients AS uuid[]), CAST(:ids AS uuid[]), "
    "'retention')")


def _policy(row: Any) -> PolicyRead:
    period: timedelta = row.period
    return PolicyRead(id=row.id, clinic_id=row.clinic_id, data_category=row.data_category,
                      trigger=row.trigger, action=row.action, period_days=period.days,
                      legal_reference=row.legal_reference, created_at=row.created_at,
                      created_by=row.created_by, retired_at=row.retired_at,
                      retired_by=row.retired_by)


class SqlRetentionPolicyRepository(SqlRepository):
    __slots__ = ()

    def active_id(self, category: str, trigger: str) -> uuid.UUID | None:
        """The clinic's active policy for ``category`` and ``trigger``, if any."""
        return self._execute(ACTIVE, {"clinic": self.clinic_id, "category": category,
                                      "trigger": trigger}).scalar_one_or_none()

    def insert(self, category: str, trigger: str, action: str, days: int,
               reference: str) -> PolicyRead:
        return _policy(self._execute(INSERT, {
            "clinic": self.clinic_id, "category": category, "trigger": trigger,
            "action": action, "days": days, "reference": reference,
            "actor": self._uow.actor.id}).one())

    def list(self, *, include_retired: bool) -> builtins.list[PolicyRead]:
        return [_policy(r) for r in self._execute(LIST, {"clinic": self.clinic_id,
                                                         "everything": include_retired})]

    def lock(self, policy_id: uuid.UUID) -> PolicyRead | None:
        """The policy, locked for this transaction (None: not the clinic's)."""
        row: Row[Any] | None = self._execute(LOCK, {"clinic": self.clinic_id,
                                                    "id": policy_id}).first()
        return None if row is None else _policy(row)

    def retire(self, policy_id: uuid.UUID) -> PolicyRead:
        return _policy(self._execute(RETIRE, {"clinic": self.clinic_id, "id": policy_id,
                                              "actor": self._uow.actor.id}).one())

    def in_force(self, clinic_id: uuid.UUID | None = None) -> builtins.list[PolicyInForce]:
        """Active policies that change something, of ``clinic_id`` or of every clinic (a
        service unit of work: the policies of every clinic are read)."""
        return [PolicyInForce(r.id, r.clinic_id, r.data_category, r.trigger, r.period, r.action,
                              r.legal_reference)
                for r in self._execute(IN_FORCE, {"clinic": clinic_id})]

    def due(self, policy: PolicyInForce, cutoff: datetime) -> builtins.list[uuid.UUID]:
        query = DUE.get(RetentionTrigger(policy.trigger))
        if query is None:
            return []
        return [target for (target,) in self._execute(query, {"c": policy.clinic_id,
                                                              "cutoff": cutoff})]

    def remove_consent_evidence(self, consent_ids: Sequence[uuid.UUID]) -> None:
        self._execute(REMOVE_EVIDENCE, {"patients": [], "ids": list(consent_ids)})
