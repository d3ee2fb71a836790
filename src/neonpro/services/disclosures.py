"""The disclosure log: every sharing of a patient's data with a third party.

It answers the patient's "with whom was my data shared" (LGPD Art. 18 VII) and holds the
fields of an accounting of disclosures over 6 years (45 CFR 164.528): date, recipient and
address, a description of the data, the purpose and the legal basis. A sharing on the
patient's consent needs a granted, unexpired, unrevoked ``data_sharing`` consent at the
moment it is recorded (``ConsentRequired`` otherwise); the consent row is linked.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import Field

from neonpro.domain.errors import ValidationFailed
from neonpro.domain.holidays import add_years
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.schemas._types import Instant, LongText, Name, Schema
from neonpro.domain.schemas.disclosure import DisclosureFilters, DisclosureRead, NewDisclosure
from neonpro.domain.vocabulary import (
    AuditAction,
    AuditResource,
    ConsentPurpose,
    DataCategory,
    LegalBasis,
)
from neonpro.services.consents import SENSITIVE, require_consent

__all__ = ["ACCOUNTING_YEARS", "DisclosureCreate", "DisclosureRead", "accounting_since",
           "list_disclosures", "record_disclosure"]

ACCOUNTING_YEARS = 6
CLOCK_SKEW = timedelta(minutes=5)
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
# LGPD Art. 11 lists the bases for sensitive data; contract and legitimate interest are not
# among them.
NOT_FOR_HEALTH_DATA = frozenset({LegalBasis.CONTRACT, LegalBasis.LEGITIMATE_INTEREST})


class DisclosureCreate(Schema):
    patient_id: uuid.UUID
    disclosed_at: Instant | None = Field(default=None, description="default now")
    recipient_name: Name
    recipient_address: str | None = Field(default=None, min_length=1, max_length=500)
    data_description: LongText = Field(min_length=1)
    data_categories: list[DataCategory] = Field(default_factory=list, max_length=20)
    purpose: str = Field(min_length=1, max_length=500)
    legal_basis: LegalBasis
    consent_record_id: uuid.UUID | None = Field(
        default=None, description="with basis consent: the current data_sharing consent "
        "(filled in when omitted)")


def accounting_since(now: datetime | None = None) -> datetime:
    """The start of the 6-year accounting window ending ``now``."""
    return add_years(now or datetime.now(UTC), -ACCOUNTING_YEARS)


def _consent_reference(uow: UnitOfWork, data: DisclosureCreate) -> uuid.UUID | None:
    if data.legal_basis == LegalBasis.CONSENT:
        require_consent(uow, data.patient_id, ConsentPurpose.DATA_SHARING)
        current = uow.consents.current(data.patient_id, ConsentPurpose.DATA_SHARING)
        assert current is not None  # noqa: S101  (require_consent passed)
        if data.consent_record_id not in (None, current.id):
            raise ValidationFailed("consent_record_id",
                                   "is not the patient's current data-sharing consent")
        return current.id
    if data.consent_record_id is not None:
        consent = uow.consents.get(data.consent_record_id)
        if consent.patient_id != data.patient_id:
            raise ValidationFailed("consent_record_id", "belongs to another patient")
    return data.consent_record_id


def record_disclosure(uow: UnitOfWork, data: DisclosureCreate,
                      now: datetime | None = None) -> DisclosureRead:
    """Log one sharing; refused without a legal basis valid for what is shared."""
    now = now or datetime.now(UTC)
    disclosed_at = data.disclosed_at or now
    if disclosed_at > now + CLOCK_SKEW:
        raise ValidationFailed("disclosed_at", "must not be in the future")
    if disclosed_at < EARLIEST:
        raise ValidationFailed("disclosed_at", "must not be before 1900")
    categories = {c.value for c in data.data_categories}
    if data.legal_basis in NOT_FOR_HEALTH_DATA and categories & SENSITIVE:
        raise ValidationFailed("legal_basis", "not a legal basis for health data (LGPD art. 11)")
    with uow:
        uow.patients.get(data.patient_id)  # NotFound for another clinic's or a deleted patient
        consent_id = _consent_reference(uow, data)
        row = uow.disclosures.add(NewDisclosure(
            patient_id=data.patient_id, disclosed_at=disclosed_at,
            recipient_name=data.recipient_name, recipient_address=data.recipient_address,
            data_description=data.data_description, data_categories=sorted(categories),
            purpose=data.purpose, legal_basis=data.legal_basis, consent_record_id=consent_id,
        ))
        uow.commit()
    return row


def list_disclosures(uow: UnitOfWork, patient_id: uuid.UUID | None = None, *,
                     since: datetime | None = None, until: datetime | None = None,
                     page: PageRequest | None = None,
                     now: datetime | None = None) -> Page[DisclosureRead]:
    """A patient's (or the clinic's) disclosures, newest first; by default the 6-year
    accounting window. The read is audited."""
    filters = DisclosureFilters(patient_id=patient_id, since=since or accounting_since(now),
                                until=until)
    if filters.until is not None and filters.since is not None and filters.since >= filters.until:
        raise ValidationFailed("since", "must be before until")
    with uow:
        if patient_id is not None:
            uow.patients.get(patient_id)
        result = uow.disclosures.list(filters, page)
        uow.audit.record(AuditAction.VIEW, AuditResource.DISCLOSURES, patient_id=patient_id,
                         details={"returned": len(result.items)})
        uow.commit()
    return result
