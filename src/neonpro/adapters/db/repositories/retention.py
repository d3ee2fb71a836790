"""Retention policies in SQL: inserted, listed and retired, never changed nor deleted (the
table's guard trigger holds every role to it: ``retention_sql.py``)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Row, text

from neonpro.adapters.db.repositories._base import SqlRepository

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
LOCK = text("SELECT id, retired_at FROM retention_policies "
                   "WHERE clinic_id = :clinic AND id = :id FOR UPDATE")
RETIRE = text(
    "UPDATE retention_policies SET retired_at = now(), retired_by = :actor "
    "WHERE clinic_id = :clinic AND id = :id AND retired_at IS NULL RETURNING id, clinic_id, "
    "data_category, trigger, action, period, legal_reference, created_at, created_by, "
    "retired_at, retired_by")



class SqlRetentionPolicyRepository(SqlRepository):
    __slots__ = ()

    def active_id(self, category: str, trigger: str) -> uuid.UUID | None:
        """The clinic's active policy for ``category`` and ``trigger``, if any."""
        return self._execute(ACTIVE, {"clinic": self.clinic_id, "category": category,
                                      "trigger": trigger}).scalar_one_or_none()

    def insert(self, category: str, trigger: str, action: str, days: int,
               reference: str) -> Row[Any]:
        return self._execute(INSERT, {
            "clinic": self.clinic_id, "category": category, "trigger": trigger,
            "action": action, "days": days, "reference": reference,
            "actor": self._uow.actor.id}).one()

    def list(self, *, include_retired: bool) -> list[Row[Any]]:
        return list(self._execute(LIST, {"clinic": self.clinic_id,
                                         "everything": include_retired}).all())

    def lock(self, policy_id: uuid.UUID) -> Row[Any] | None:
        """The policy's id and retirement, locked for this transaction (None: not the
        clinic's)."""
        return self._execute(LOCK, {"clinic": self.clinic_id, "id": policy_id}).first()

    def retire(self, policy_id: uuid.UUID) -> Row[Any]:
        return self._execute(RETIRE, {"clinic": self.clinic_id, "id": policy_id,
                                      "actor": self._uow.actor.id}).one()
