"""Consent use cases (the compliance issue adds audit, expiry and require_consent)."""

from __future__ import annotations

import uuid

from neonpro.domain.ports import UnitOfWork
from neonpro.domain.schemas.consent import ConsentCreate, ConsentRead, ConsentRevoke
from neonpro.domain.vocabulary import ConsentPurpose


def grant_consent(uow: UnitOfWork, data: ConsentCreate) -> ConsentRead:
    with uow:
        uow.patients.get(data.patient_id)  # NotFound for another clinic's or a deleted patient
        consent = uow.consents.add(data)
        uow.commit()
    return consent


def revoke_consent(uow: UnitOfWork, consent_id: uuid.UUID,
                   data: ConsentRevoke | None = None) -> ConsentRead:
    with uow:
        revoked = uow.consents.revoke(consent_id, data)
        uow.commit()
    return revoked


def consent_history(uow: UnitOfWork, patient_id: uuid.UUID,
                    purpose: ConsentPurpose | None = None) -> list[ConsentRead]:
    with uow:
        rows = uow.consents.history(patient_id, purpose)
        uow.commit()
    return rows
