"""An in-memory fake of the consent ledger (``domain.ports.ConsentRepository``).

Append-only, in insertion order (its ``entry_no``); a revocation or an expiry is a new row
superseding the grant. The state of a purpose mirrors ``neonpro_consent_state``
(``adapters/db/consent_sql.py``): per patient and purpose the latest decision, a grant or
a revocation, wins; a grant past ``expires_at``, or one an ``expired`` row supersedes, is
expired. That rule itself is tested against PostgreSQL (tests/integration/
test_consent_state.py); this fake lets the services above it be tested without it.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any

from neonpro.domain.errors import Conflict
from neonpro.domain.schemas.consent import ConsentCreate, ConsentRead, ConsentRevoke, ConsentState
from neonpro.domain.vocabulary import ConsentPurpose, ConsentStatus, ConsentStatusSummary
from tests.unit.fakes_base import TenantRows, utcnow


class FakeConsents(TenantRows):
    """The ledger in insertion order (its ``entry_no``); state as ``neonpro_consent_state``."""

    table = "consents"
    entity = "consent"

    def get(self, consent_id: uuid.UUID) -> ConsentRead:
        row: ConsentRead = super().get(consent_id)
        return row

    def _append(self, **values: Any) -> ConsentRead:
        base: dict[str, Any] = {"given_at": None, "revoked_at": None, "supersedes_id": None,
                                "evidence": {}, "collected_by": self.uow.actor.id,
                                "created_at": utcnow()}
        row = ConsentRead.model_construct(**{**base, **values, "id": uuid.uuid4()})
        self.rows[row.id] = row
        return row

    def add(self, data: ConsentCreate) -> ConsentRead:
        return self._append(
            clinic_id=self.clinic_id, patient_id=data.patient_id, purpose=data.purpose.value,
            legal_basis=data.legal_basis.value, status=ConsentStatus.GRANTED.value,
            given_at=utcnow(), expires_at=data.expires_at,
            collection_method=data.collection_method.value, terms_version=data.terms_version,
            terms_hash=data.terms_hash, evidence=data.evidence,
            data_categories=[c.value for c in data.data_categories])

    def history(self, patient_id: uuid.UUID,
                purpose: ConsentPurpose | None = None) -> builtins.list[ConsentRead]:
        return [r for r in self._mine() if r.patient_id == patient_id
                and (purpose is None or r.purpose == purpose.value)]

    def _states(self, clinic: uuid.UUID | None, at: datetime) -> builtins.list[ConsentState]:
        ledger = [r for r in self.rows.values() if clinic is None or r.clinic_id == clinic]
        expired = {r.supersedes_id for r in ledger if r.status == ConsentStatus.EXPIRED}
        latest: dict[tuple[uuid.UUID, uuid.UUID, str], tuple[int, ConsentRead]] = {}
        for entry_no, r in enumerate(ledger, start=1):
            if r.status in (ConsentStatus.GRANTED, ConsentStatus.REVOKED):
                latest[(r.clinic_id, r.patient_id, r.purpose)] = (entry_no, r)
        out = []
        for entry_no, d in latest.values():
            recorded = d.status == ConsentStatus.GRANTED and d.id in expired
            state = (ConsentStatusSummary.WITHDRAWN if d.status == ConsentStatus.REVOKED
                     else ConsentStatusSummary.EXPIRED
                     if recorded or (d.expires_at is not None and d.expires_at <= at)
                     else ConsentStatusSummary.GIVEN)
            out.append(ConsentState.model_construct(
                patient_id=d.patient_id, purpose=d.purpose, state=state, decision=d.status,
                decision_id=d.id, entry_no=entry_no,
                decided_at=d.revoked_at if d.status == ConsentStatus.REVOKED else d.given_at,
                legal_basis=d.legal_basis, terms_version=d.terms_version, given_at=d.given_at,
                expires_at=d.expires_at, data_categories=d.data_categories,
                expiry_recorded=recorded))
        return sorted(out, key=lambda s: (s.patient_id.bytes, s.purpose))

    def states(self, patient_id: uuid.UUID | None = None,
               at: datetime | None = None) -> builtins.list[ConsentState]:
        return [s for s in self._states(self.clinic_id, at or utcnow())
                if patient_id is None or s.patient_id == patient_id]

    def state(self, patient_id: uuid.UUID, purpose: ConsentPurpose,
              at: datetime | None = None) -> ConsentState | None:
        return next((s for s in self.states(patient_id, at) if s.purpose == purpose.value),
                    None)

    def current(self, patient_id: uuid.UUID, purpose: ConsentPurpose) -> ConsentRead | None:
        decided = self.state(patient_id, purpose)
        return None if decided is None else self.get(decided.decision_id)

    def expire_due(self, now: datetime) -> int:
        """Every clinic's with a service unit of work, else this clinic's."""
        superseded = {r.supersedes_id for r in self.rows.values()}
        due = [r for r in self.rows.values()
               if r.status == ConsentStatus.GRANTED and r.expires_at is not None
               and r.expires_at <= now and r.id not in superseded
               and (self.uow.service or r.clinic_id == self.clinic_id)]
        for r in due:
            self._append(**{**r.model_dump(), "status": ConsentStatus.EXPIRED.value,
                            "supersedes_id": r.id, "revoked_at": None,
                            "evidence": {"reason": "expires_at passed", "job": "expire_consents"},
                            "collected_by": self.uow.actor.id})
        return len(due)

    def revoke(self, consent_id: uuid.UUID, data: ConsentRevoke | None = None) -> ConsentRead:
        old = self.get(consent_id)
        if old.status != ConsentStatus.GRANTED:
            raise Conflict(f"only a granted consent can be revoked (this one is {old.status})",
                           "status")
        return self._append(**{**old.model_dump(), "status": ConsentStatus.REVOKED.value,
                               "revoked_at": utcnow(), "supersedes_id": old.id,
                               "evidence": data.evidence if data else {}})
