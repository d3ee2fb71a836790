"""The consent ledger in SQL: append-only; a revocation is a new row superseding the old."""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, insert, select, text

from neonpro.adapters.db.models import ConsentRecord
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.errors import Conflict, NotFound
from neonpro.domain.schemas.consent import (
    READ_FIELDS,
    STATE_FIELDS,
    ConsentCreate,
    ConsentRead,
    ConsentRevoke,
    ConsentState,
)
from neonpro.domain.vocabulary import ConsentPurpose, ConsentStatus

TABLE = cast(Table, ConsentRecord.__table__)
T = TABLE.c
READ_COLUMNS = [T[f] for f in READ_FIELDS]
# the one rule (consent_sql.py): per patient and purpose, the latest decision wins
_STATE = ("SELECT " + ", ".join(f"s.{f}" for f in STATE_FIELDS)  # noqa: S608
          + " FROM neonpro_consent_state(coalesce(CAST(:at AS timestamptz), now())) s"
          " WHERE s.clinic_id = :c")


class SqlConsentRepository(SqlRepository):
    __slots__ = ()

    def _build(self, row: Any) -> ConsentRead:
        return ConsentRead.model_construct(**row._mapping)  # noqa: SLF001

    def get(self, consent_id: uuid.UUID) -> ConsentRead:
        query = select(*READ_COLUMNS).where(T.clinic_id == self.clinic_id, T.id == consent_id)
        row = self._execute(query).first()
        if row is None:
            raise NotFound("consent", consent_id)
        return self._build(row)

    def add(self, data: ConsentCreate) -> ConsentRead:
        """Record a granted consent (a new ledger row)."""
        values = data.model_dump(mode="python")
        values["data_categories"] = [c.value for c in data.data_categories]
        values.update(
            id=uuid.uuid4(), clinic_id=self.clinic_id, status=ConsentStatus.GRANTED.value,
            given_at=datetime.now(UTC), collected_by=self._uow.actor.id,
        )
        statement = insert(TABLE).values(**values).returning(*READ_COLUMNS)
        return self._build(self._execute(statement).one())

    def history(self, patient_id: uuid.UUID,
                purpose: ConsentPurpose | None = None) -> list[ConsentRead]:
        """Every ledger row of the patient (oldest first): the state at any past moment."""
        query = select(*READ_COLUMNS).where(T.clinic_id == self.clinic_id,
                                            T.patient_id == patient_id)
        if purpose is not None:
            query = query.where(T.purpose == purpose.value)
        return [self._build(r) for r in self._execute(query.order_by(T.entry_no))]

    def states(self, patient_id: uuid.UUID | None = None,
               at: datetime | None = None) -> builtins.list[ConsentState]:
        """The state of each purpose (of one patient, or of every patient of the clinic):
        the latest decision wins (``neonpro_consent_state``); expiry judged at ``at``."""
        sql, params = _STATE, {"c": self.clinic_id, "at": at}
        if patient_id is not None:
            sql, params = sql + " AND s.patient_id = :p", {**params, "p": patient_id}
        rows = self._execute(text(sql + " ORDER BY s.patient_id, s.purpose"), params)
        return [ConsentState.model_validate(dict(r._mapping)) for r in rows]  # noqa: SLF001

    def state(self, patient_id: uuid.UUID, purpose: ConsentPurpose,
              at: datetime | None = None) -> ConsentState | None:
        """The state of one purpose of the patient (None: no decision recorded)."""
        rows = self._execute(text(_STATE + " AND s.patient_id = :p AND s.purpose = :u"),
                             {"c": self.clinic_id, "p": patient_id, "u": purpose.value,
                              "at": at})
        row = rows.first()
        return None if row is None else ConsentState.model_validate(dict(row._mapping))  # noqa: SLF001

    def expire_due(self, now: datetime) -> int:
        """Service role: append ``expired`` rows superseding current grants past expiry."""
        newer = TABLE.alias("newer")
        due = (
            select(T.clinic_id, T.id, T.patient_id, T.purpose, T.legal_basis, T.given_at,
                   T.expires_at, T.collection_method, T.terms_version, T.terms_hash,
                   T.data_categories)
            .where(T.status == ConsentStatus.GRANTED.value, T.expires_at <= now)
            .where(~select(newer.c.id).where(and_(
                newer.c.clinic_id == T.clinic_id, newer.c.supersedes_id == T.id)).exists())
        )
        if not self._uow.service:
            due = due.where(T.clinic_id == self.clinic_id)
        rows = self._execute(due).all()
        for row in rows:
            values = dict(row._mapping)  # noqa: SLF001
            values.update(id=uuid.uuid4(), supersedes_id=values.pop("id"),
                          status=ConsentStatus.EXPIRED.value,
                          evidence={"reason": "expires_at passed", "job": "expire_consents"},
                          collected_by=self._uow.actor.id)
            self._execute(insert(TABLE).values(**values))
        return len(rows)

    def current(self, patient_id: uuid.UUID, purpose: ConsentPurpose) -> ConsentRead | None:
        """The ledger row of the purpose's latest decision (``state``), None without one."""
        decided = self.state(patient_id, purpose)
        return None if decided is None else self.get(decided.decision_id)

    def revoke(self, consent_id: uuid.UUID, data: ConsentRevoke | None = None) -> ConsentRead:
        """Append a revocation superseding ``consent_id``; the grant stays readable."""
        old = self.get(consent_id)
        if old.status != ConsentStatus.GRANTED:
            raise Conflict(f"only a granted consent can be revoked (this one is {old.status})",
                           "status")
        values = {f: getattr(old, f) for f in (
            "patient_id", "purpose", "legal_basis", "given_at", "expires_at",
            "collection_method", "terms_version", "terms_hash", "data_categories")}
        values.update(
            id=uuid.uuid4(), clinic_id=self.clinic_id, status=ConsentStatus.REVOKED.value,
            revoked_at=datetime.now(UTC), supersedes_id=old.id,
            evidence=(data.evidence if data else {}), collected_by=self._uow.actor.id,
        )
        statement = insert(TABLE).values(**values).returning(*READ_COLUMNS)
        return self._build(self._execute(statement).one())
