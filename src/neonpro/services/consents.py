"""Consent use cases: grant, revoke, history, require, expire, and the compliance check.

The ledger is append-only (a revocation or an expiry is a new row superseding the grant).
The state of a purpose is computed by the database in one place (``neonpro_consent_state``,
see ``adapters/db/consent_sql.py``): per patient and purpose the latest decision, a grant
or a revocation in ledger order, wins. The gate, the patient's summary, confirmation, the
exports and the compliance check all read it. Every grant,
revocation and expiry is audited by the ledger's trigger (CONSENT_GRANTED, ...).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from neonpro.domain.errors import ConsentRequired, NotFound
from neonpro.domain.paging import PageRequest
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.schemas.consent import (
    ConsentCreate,
    ConsentRead,
    ConsentRevoke,
    ConsentState,
)
from neonpro.domain.vocabulary import (
    ConsentPurpose,
    ConsentStatus,
    ConsentStatusSummary,
    DataCategory,
    RiskLevel,
)

# Purposes that rest on the patient's consent (LGPD Art. 8, 11 I); care itself rests on
# health protection (Art. 11 II f) and needs none.
CONSENT_BASED = frozenset({
    ConsentPurpose.MARKETING, ConsentPurpose.RESEARCH, ConsentPurpose.DATA_SHARING,
    ConsentPurpose.IMAGE_USE, ConsentPurpose.TELEMEDICINE, ConsentPurpose.INSURANCE_SHARING,
})
SENSITIVE = frozenset({DataCategory.CLINICAL.value, DataCategory.IMAGES.value})
MAX_AGE = timedelta(days=2 * 365)  # a consent older than this should be renewed


def grant_consent(uow: UnitOfWork, data: ConsentCreate) -> ConsentRead:
    with uow:
        uow.patients.get(data.patient_id)  # NotFound for another clinic's or a deleted patient
        consent = uow.consents.add(data)
        uow.commit()
    return consent


def revoke_consent(uow: UnitOfWork, consent_id: uuid.UUID,
                   data: ConsentRevoke | None = None) -> ConsentRead:
    """Revoke at once: the very next operation for that purpose is refused (no cache)."""
    with uow:
        revoked = uow.consents.revoke(consent_id, data)
        uow.commit()
    return revoked


def consent_history(uow: UnitOfWork, patient_id: uuid.UUID,
                    purpose: ConsentPurpose | None = None) -> list[ConsentRead]:
    with uow:
        rows = uow.consents.history(patient_id, purpose)
        if not rows and not uow.patients.known(patient_id):
            raise NotFound("patient", patient_id)  # not an empty history
        uow.commit()
    return rows


def require_consent(uow: UnitOfWork, patient_id: uuid.UUID, purpose: ConsentPurpose) -> None:
    """Inside an open unit of work: raise ConsentRequired unless the purpose needs no consent
    or the purpose's state is ``given`` (its latest decision is a grant in force)."""
    if purpose not in CONSENT_BASED:
        return
    state = uow.consents.state(patient_id, purpose)
    if state is None or not state.in_force:
        raise ConsentRequired(purpose.value)


def consent_states(uow: UnitOfWork, patient_id: uuid.UUID) -> list[ConsentState]:
    """The state of each purpose the patient decided on (the latest decision wins)."""
    with uow:
        uow.patients.get(patient_id)  # NotFound for another clinic's or a deleted patient
        states = uow.consents.states(patient_id)
        uow.commit()
    return states


def expire_consents(service_uow: UnitOfWork, now: datetime | None = None) -> int:
    """Append an ``expired`` row for every current grant past ``expires_at`` (all clinics)."""
    with service_uow:
        count = service_uow.consents.expire_due(now or datetime.now(UTC))
        service_uow.commit()
    return count


@dataclass(frozen=True)
class Finding:
    kind: str
    risk: RiskLevel
    consent_id: uuid.UUID
    patient_id: uuid.UUID
    purpose: str


def check_compliance(uow: UnitOfWork, now: datetime | None = None,
                     max_age: timedelta = MAX_AGE) -> list[Finding]:
    """The seed's compliance check over the state of each purpose (its latest decision,
    ``neonpro_consent_state``), with a risk each: an older grant a newer decision replaced
    or withdrew is no longer current, whatever its own row says."""
    now = now or datetime.now(UTC)
    findings: list[Finding] = []
    with uow:
        states = uow.consents.states(at=now)
        uow.commit()
    for c in states:
        if c.decision != ConsentStatus.GRANTED:
            continue  # withdrawn: nothing rests on it

        def add(kind: str, risk: RiskLevel, c: ConsentState = c) -> None:
            findings.append(Finding(kind, risk, c.decision_id, c.patient_id, c.purpose))

        if c.state == ConsentStatusSummary.EXPIRED and not c.expiry_recorded:
            add("expired_but_not_marked", RiskLevel.HIGH)
        if not c.in_force:
            continue  # expired: the findings below are about a consent in force
        if c.expires_at is None and ConsentPurpose(c.purpose) in CONSENT_BASED:
            sensitive = SENSITIVE.intersection(c.data_categories)
            add("sensitive_categories_without_expiry" if sensitive else "no_expiry",
                RiskLevel.HIGH if sensitive else RiskLevel.MEDIUM)
        if c.given_at is not None and now - c.given_at > max_age:
            add("older_than_policy", RiskLevel.MEDIUM)
    return findings


@dataclass(frozen=True)
class Coverage:
    """One purpose across the clinic: how many patients' latest decision is in force,
    expired or withdrawn (``neonpro_consent_state``); the others never decided."""

    purpose: str
    given: int
    expired: int
    withdrawn: int
    patients: int

    @property
    def undecided(self) -> int:
        return max(self.patients - self.given - self.expired - self.withdrawn, 0)


def consent_coverage(uow: UnitOfWork, now: datetime | None = None) -> list[Coverage]:
    """Every purpose's coverage over the clinic's patients (counts only, no patient)."""
    with uow:
        states = uow.consents.states(at=now or datetime.now(UTC))
        total = uow.patients.list(page=PageRequest(limit=1, with_total=True)).total or 0
        uow.commit()
    counted: dict[tuple[str, str], int] = {}
    for s in states:
        counted[s.purpose, s.state] = counted.get((s.purpose, s.state), 0) + 1
    return [Coverage(p.value, counted.get((p.value, ConsentStatusSummary.GIVEN), 0),
                     counted.get((p.value, ConsentStatusSummary.EXPIRED), 0),
                     counted.get((p.value, ConsentStatusSummary.WITHDRAWN), 0), total)
            for p in ConsentPurpose]
