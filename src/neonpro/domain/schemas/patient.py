"""Patient schemas: one per operation. A new column is never exposed by accident.

Personal data is validated and normalised here (CPF/CNS check digits, phone, CEP, UF);
encryption and blind indexes are the repository's job.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import model_validator

from neonpro.domain.paging import Direction, Page
from neonpro.domain.schemas._types import (
    AnsCode,
    BloodTypeStr,
    CepStr,
    CnsStr,
    CountryCode,
    CpfStr,
    Day,
    DocumentNumber,
    EmailStr,
    LongText,
    Name,
    PhoneStr,
    ReadSchema,
    Schema,
    ShortText,
    TextList,
    UfStr,
    Url,
    Version,
)
from neonpro.domain.vocabulary import (
    ConsentStatusSummary,
    Gender,
    MaritalStatus,
    PreferredContactMethod,
)

# Fields a caller may set on create and update (the same list: what is not here is
# system-managed: ids, counters, LGPD state, audit stamps, version).
EDITABLE_FIELDS: tuple[str, ...] = (
    "medical_record_number", "full_name", "given_names", "family_name", "preferred_name",
    "birth_date", "gender", "marital_status", "nationality", "deceased_indicator",
    "deceased_date", "photo_url", "cpf", "cns", "rg", "rg_issuing_organ", "passport_number",
    "external_ids", "phone_primary", "phone_secondary", "email", "preferred_contact_method",
    "language_preference", "address_line1", "address_line2", "city", "state", "postal_code",
    "country", "blood_type", "allergies", "chronic_conditions", "current_medications",
    "accessibility_needs", "patient_notes", "internal_notes", "primary_professional_id",
    "insurance_provider", "insurance_number", "insurance_plan", "ans_operator_code",
    "emergency_contact_name", "emergency_contact_phone", "emergency_contact_relationship",
    "emergency_contact_cpf", "data_source", "registration_source",
)


class _PatientFields(Schema):
    medical_record_number: ShortText | None = None
    given_names: TextList | None = None
    family_name: ShortText | None = None
    preferred_name: ShortText | None = None
    birth_date: Day | None = None
    gender: Gender | None = None
    marital_status: MaritalStatus | None = None
    nationality: ShortText | None = None
    deceased_indicator: bool | None = None
    deceased_date: Day | None = None
    photo_url: Url | None = None
    cpf: CpfStr | None = None
    cns: CnsStr | None = None
    rg: DocumentNumber | None = None
    rg_issuing_organ: ShortText | None = None
    passport_number: DocumentNumber | None = None
    external_ids: dict[str, str] | None = None
    phone_primary: PhoneStr | None = None
    phone_secondary: PhoneStr | None = None
    email: EmailStr | None = None
    preferred_contact_method: PreferredContactMethod | None = None
    language_preference: ShortText | None = None
    address_line1: ShortText | None = None
    address_line2: ShortText | None = None
    city: ShortText | None = None
    state: UfStr | None = None
    postal_code: CepStr | None = None
    country: CountryCode | None = None
    blood_type: BloodTypeStr | None = None
    allergies: TextList | None = None
    chronic_conditions: TextList | None = None
    current_medications: TextList | None = None
    accessibility_needs: TextList | None = None
    patient_notes: LongText | None = None
    internal_notes: LongText | None = None
    primary_professional_id: uuid.UUID | None = None
    insurance_provider: ShortText | None = None
    insurance_number: ShortText | None = None
    insurance_plan: ShortText | None = None
    ans_operator_code: AnsCode | None = None
    emergency_contact_name: ShortText | None = None
    emergency_contact_phone: PhoneStr | None = None
    emergency_contact_relationship: ShortText | None = None
    emergency_contact_cpf: CpfStr | None = None
    data_source: ShortText | None = None
    registration_source: ShortText | None = None

    @model_validator(mode="after")
    def _dates_agree(self) -> _PatientFields:
        if self.deceased_date is not None and not self.deceased_indicator:
            raise ValueError("deceased_date needs deceased_indicator")
        if self.birth_date and self.deceased_date and self.deceased_date < self.birth_date:
            raise ValueError("deceased_date is before birth_date")
        if self.birth_date and self.birth_date > date.today():  # noqa: DTZ011
            raise ValueError("birth_date is in the future")
        return self


class PatientCreate(_PatientFields):
    """A new patient. ``full_name`` is required; the record number is generated if absent."""

    full_name: Name


class PatientUpdate(_PatientFields):
    """A change to a patient: only the fields given are changed; ``version`` must match."""

    full_name: Name | None = None
    version: Version

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set if k != "version"}


class PatientRead(ReadSchema):
    """What the data layer returns about a patient (decrypted, explicit fields)."""

    id: uuid.UUID
    clinic_id: uuid.UUID
    medical_record_number: str
    full_name: str
    given_names: list[str]
    family_name: str | None
    preferred_name: str | None
    birth_date: date | None
    gender: str | None
    marital_status: str | None
    nationality: str | None
    deceased_indicator: bool
    deceased_date: date | None
    photo_url: str | None
    cpf: str | None
    cns: str | None
    rg: str | None
    rg_issuing_organ: str | None
    passport_number: str | None
    external_ids: dict[str, Any]
    phone_primary: str | None
    phone_secondary: str | None
    email: str | None
    preferred_contact_method: str | None
    language_preference: str | None
    address_line1: str | None
    address_line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None
    blood_type: str | None
    allergies: list[str]
    chronic_conditions: list[str]
    current_medications: list[str]
    accessibility_needs: list[str]
    patient_notes: str | None
    internal_notes: str | None
    primary_professional_id: uuid.UUID | None
    insurance_provider: str | None
    insurance_number: str | None
    insurance_plan: str | None
    ans_operator_code: str | None
    emergency_contact_name: str | None
    emergency_contact_phone: str | None
    emergency_contact_relationship: str | None
    emergency_contact_cpf: str | None
    data_consent_status: str
    data_consent_version: str | None
    data_retention_until: date | None
    anonymization_scheduled_at: datetime | None
    anonymized_at: datetime | None
    blocked_at: datetime | None
    right_to_forget_requested_at: datetime | None
    data_portability_requested_at: datetime | None
    data_source: str | None
    registration_source: str | None
    no_show_risk_score: int | None
    total_no_shows: int
    total_appointments: int
    last_no_show_date: date | None
    is_active: bool
    last_visit_date: date | None
    next_appointment_date: date | None
    created_at: datetime
    created_by: uuid.UUID | None
    updated_at: datetime
    updated_by: uuid.UUID | None
    version: int
    deleted_at: datetime | None


READ_FIELDS: tuple[str, ...] = tuple(PatientRead.model_fields)

PatientPage = Page[PatientRead]


class PatientSortField(StrEnum):
    """The allow-list of sort fields (keyset mode: all of them; they are NOT NULL)."""

    FULL_NAME = "full_name"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"


@dataclass(frozen=True, slots=True)
class PatientSort:
    field: PatientSortField = PatientSortField.CREATED_AT
    direction: Direction = Direction.ASC


@dataclass(frozen=True, slots=True)
class PatientFilters:
    """Typed list filters; every one is optional."""

    name: str | None = None  # case- and accent-insensitive substring of the full name
    is_active: bool | None = True
    consent_status: ConsentStatusSummary | None = None
    primary_professional_id: uuid.UUID | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    last_visit_from: date | None = None
    last_visit_to: date | None = None
    min_no_show_risk: int | None = None
    include_deleted: bool = False
