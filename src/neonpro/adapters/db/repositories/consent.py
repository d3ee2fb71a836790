"""The consent ledger in SQL: append-only; a revocation is a new row superseding the old."""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, insert, select

from neonpro.adapters.db.models import ConsentRecord
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.errors import Conflict, NotFound
from neonpro.domain.schemas.consent import READ_FIELDS, ConsentCreate, ConsentRead, ConsentRevoke
from neonpro.domain.vocabulary import ConsentPurpose, ConsentStatus

TABLE = cast(Table, ConsentRecord.__table__)
T = TABLE.c
READ_COLUMNS = [T[f] for f in READ_FIELDS]


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
        return [self._build(r) for r in self._execute(query.order_by(T.created_at, T.id))]

    def current_all(self) -> builtins.list[ConsentRead]:
        """Every current (not superseded) ledger row of the clinic."""
        newer = TABLE.alias("newer")
        query = select(*READ_COLUMNS).where(T.clinic_id == self.clinic_id).where(
            ~select(newer.c.id).where(and_(
                newer.c.clinic_id == T.clinic_id, newer.c.supersedes_id == T.id)).exists()
        ).order_by(T.patient_id, T.purpose)
        return [self._build(r) for r in self._execute(query)]

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
        """The latest row for the purpose that nothing supersedes."""
        newer = TABLE.alias("newer")
        query = (
            select(*READ_COLUMNS)
            .where(T.clinic_id == self.clinic_id, T.patient_id == patient_id,
                   T.purpose == purpose.value)
            .where(~select(newer.c.id).where(and_(
                newer.c.clinic_id == T.clinic_id, newer.c.supersedes_id == T.id)).exists())
            .order_by(T.created_at.desc(), T.id.desc())
            .limit(1)
        )
        row = self._execute(query).first()
        return None if row is None else self._build(row)

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
