"""Patients: identity, Brazilian identifiers (encrypted), contact, clinical summary, LGPD state.

Columns holding personal data carry ``pii(category, rule)``: a database comment
and ``Column.info["lgpd"]`` naming the LGPD category and what anonymization does.
Columns without it are operational state (flags, counters, LGPD timestamps) that
stays meaningful, and non-identifying, once the identifying columns are gone.

CPF, CNS, RG, passport, the emergency contact's CPF and the notes are stored as
ciphertext (``*_encrypted``, bytea); CPF and CNS also carry a keyed blind index
(HMAC), which is what per-clinic uniqueness and lookups use. Format rules for
those values live in the domain layer, since the database only sees ciphertext.
"""

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TenantMixin, TimestampMixin, table_args, uuid_pk
from neonpro.adapters.db.models._checks import (
    ANS_OPERATOR,
    CEP,
    PHONE_BR,
    ck_in,
    ck_non_negative,
    ck_range,
    ck_regex,
    ck_uf,
    ck_version,
)
from neonpro.adapters.db.models._columns import actor_column, pii, tenant_fk
from neonpro.domain.text import FOLD_FROM, FOLD_TO
from neonpro.domain.vocabulary import AnonymizationRule as Anon
from neonpro.domain.vocabulary import (
    BloodType,
    ConsentStatusSummary,
    Gender,
    MaritalStatus,
    PreferredContactMethod,
)
from neonpro.domain.vocabulary import DataCategory as Cat

# Must match neonpro.domain.text.fold_for_search (the same folding applied to the query).
NAME_SEARCH_EXPRESSION = f"translate(lower(full_name), '{FOLD_FROM}', '{FOLD_TO}')"
EMPTY_ARRAY = text("'{}'")
EMPTY_OBJECT = text("'{}'::jsonb")

ID, CONTACT, ADDRESS = Cat.IDENTIFICATION, Cat.CONTACT, Cat.ADDRESS
CLINICAL, INSURANCE, EMERGENCY = Cat.CLINICAL, Cat.INSURANCE, Cat.EMERGENCY_CONTACT


def _text_array(category: Cat, rule: Anon) -> Mapped[list[str]]:
    return mapped_column(
        ARRAY(Text), default=list, server_default=EMPTY_ARRAY, **pii(category, rule)
    )


def _secret(category: Cat, rule: Anon = Anon.ERASE) -> Mapped[bytes | None]:
    return mapped_column(LargeBinary, **pii(category, rule, "ciphertext"))


class Patient(TenantMixin, TimestampMixin, Base):
    """A clinic's patient (the same person in two clinics is two rows)."""

    __tablename__ = "patients"
    __table_args__ = table_args(
        "tenant",
        UniqueConstraint("clinic_id", "medical_record_number"),
        UniqueConstraint("clinic_id", "cpf_blind_index"),  # also the CPF lookup index
        UniqueConstraint("clinic_id", "cns_blind_index"),  # also the CNS lookup index
        tenant_fk("primary_professional_id", "professionals", nullable=True),
        Index(None, "clinic_id", "is_active"),
        Index(None, "clinic_id", "data_consent_status"),
        Index(None, "clinic_id", "no_show_risk_score"),
        # keyset pagination orders by (sort field, id): the id completes each index
        Index(None, "clinic_id", "created_at", "id"),
        Index(None, "clinic_id", "updated_at", "id"),
        Index(None, "clinic_id", "full_name", "id"),
        Index(None, "clinic_id", "last_visit_date"),
        Index(None, "clinic_id", "primary_professional_id"),
        ck_in("gender", Gender),
        ck_in("marital_status", MaritalStatus),
        ck_in("preferred_contact_method", PreferredContactMethod),
        ck_in("blood_type", BloodType),
        ck_in("data_consent_status", ConsentStatusSummary),
        ck_regex("phone_primary", PHONE_BR),
        ck_regex("phone_secondary", PHONE_BR),
        ck_regex("emergency_contact_phone", PHONE_BR),
        ck_regex("postal_code", CEP),
        ck_regex("country", r"^[A-Z]{2}$"),
        ck_regex("ans_operator_code", ANS_OPERATOR),
        ck_uf("state"),
        ck_range("no_show_risk_score", 0, 100),
        ck_non_negative("total_no_shows"),
        ck_non_negative("total_appointments"),
        CheckConstraint("total_no_shows <= total_appointments", name="no_shows_within_total"),
        CheckConstraint(
            "deceased_date IS NULL OR deceased_indicator", name="deceased_date_needs_indicator"
        ),
        CheckConstraint("deceased_date >= birth_date", name="deceased_after_birth"),
        ck_version(),
    )

    id: Mapped[uuid.UUID] = uuid_pk()

    # --- identity ---
    medical_record_number: Mapped[str] = mapped_column(Text, **pii(ID, Anon.REPLACE))
    given_names: Mapped[list[str]] = _text_array(ID, Anon.ERASE)
    family_name: Mapped[str | None] = mapped_column(Text, **pii(ID, Anon.ERASE))
    full_name: Mapped[str] = mapped_column(Text, **pii(ID, Anon.REPLACE))
    # Lower-cased, accent-free copy of full_name for search; generated, so it follows every
    # change (anonymization included) even when made by raw SQL.
    search_name: Mapped[str] = mapped_column(
        Text,
        Computed(NAME_SEARCH_EXPRESSION, persisted=True),
        **pii(ID, Anon.REPLACE, "generated from full_name"),
    )
    preferred_name: Mapped[str | None] = mapped_column(Text, **pii(ID, Anon.ERASE))
    birth_date: Mapped[date | None] = mapped_column(
        **pii(ID, Anon.GENERALIZE, "to January 1st of the year")
    )
    gender: Mapped[str | None] = mapped_column(Text, **pii(ID, Anon.KEEP))
    marital_status: Mapped[str | None] = mapped_column(Text, **pii(ID, Anon.ERASE))
    nationality: Mapped[str] = mapped_column(
        Text, default="brasileira", server_default=text("'brasileira'"), **pii(ID, Anon.KEEP)
    )
    deceased_indicator: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    deceased_date: Mapped[date | None] = mapped_column(
        **pii(ID, Anon.GENERALIZE, "to January 1st of the year")
    )
    photo_url: Mapped[str | None] = mapped_column(Text, **pii(Cat.IMAGES, Anon.ERASE))

    # --- Brazilian identifiers (ciphertext + keyed blind index) ---
    cpf_encrypted: Mapped[bytes | None] = _secret(ID)
    cpf_blind_index: Mapped[bytes | None] = mapped_column(
        LargeBinary, **pii(ID, Anon.ERASE, "keyed HMAC of the 11 digits")
    )
    cns_encrypted: Mapped[bytes | None] = _secret(ID)
    cns_blind_index: Mapped[bytes | None] = mapped_column(
        LargeBinary, **pii(ID, Anon.ERASE, "keyed HMAC of the 15 digits")
    )
    rg_encrypted: Mapped[bytes | None] = _secret(ID)
    rg_issuing_organ: Mapped[str | None] = mapped_column(Text, **pii(ID, Anon.ERASE))
    passport_number_encrypted: Mapped[bytes | None] = _secret(ID)
    external_ids: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=EMPTY_OBJECT, **pii(ID, Anon.ERASE, "set to {}")
    )

    # --- contact ---
    phone_primary: Mapped[str | None] = mapped_column(Text, **pii(CONTACT, Anon.ERASE))
    phone_secondary: Mapped[str | None] = mapped_column(Text, **pii(CONTACT, Anon.ERASE))
    email: Mapped[str | None] = mapped_column(Text, **pii(CONTACT, Anon.ERASE))
    preferred_contact_method: Mapped[str | None] = mapped_column(Text)
    language_preference: Mapped[str] = mapped_column(
        Text, default="pt-BR", server_default=text("'pt-BR'")
    )

    # --- address ---
    address_line1: Mapped[str | None] = mapped_column(Text, **pii(ADDRESS, Anon.ERASE))
    address_line2: Mapped[str | None] = mapped_column(Text, **pii(ADDRESS, Anon.ERASE))
    city: Mapped[str | None] = mapped_column(Text, **pii(ADDRESS, Anon.ERASE))
    state: Mapped[str | None] = mapped_column(Text, **pii(ADDRESS, Anon.KEEP))  # UF
    postal_code: Mapped[str | None] = mapped_column(
        Text, **pii(ADDRESS, Anon.GENERALIZE, "keep 5-digit prefix, pad with 000")
    )
    country: Mapped[str] = mapped_column(
        Text, default="BR", server_default=text("'BR'"), **pii(ADDRESS, Anon.KEEP)
    )

    # --- clinical summary ---
    blood_type: Mapped[str | None] = mapped_column(Text, **pii(CLINICAL, Anon.KEEP))
    allergies: Mapped[list[str]] = _text_array(CLINICAL, Anon.KEEP)
    chronic_conditions: Mapped[list[str]] = _text_array(CLINICAL, Anon.KEEP)
    current_medications: Mapped[list[str]] = _text_array(CLINICAL, Anon.KEEP)
    accessibility_needs: Mapped[list[str]] = _text_array(CLINICAL, Anon.KEEP)
    patient_notes_encrypted: Mapped[bytes | None] = _secret(CLINICAL)
    internal_notes_encrypted: Mapped[bytes | None] = _secret(CLINICAL)
    primary_professional_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))

    # --- insurance ---
    insurance_provider: Mapped[str | None] = mapped_column(Text, **pii(INSURANCE, Anon.KEEP))
    insurance_number: Mapped[str | None] = mapped_column(Text, **pii(INSURANCE, Anon.ERASE))
    insurance_plan: Mapped[str | None] = mapped_column(Text, **pii(INSURANCE, Anon.KEEP))
    ans_operator_code: Mapped[str | None] = mapped_column(Text, **pii(INSURANCE, Anon.KEEP))

    # --- emergency contact (a third party's personal data) ---
    emergency_contact_name: Mapped[str | None] = mapped_column(Text, **pii(EMERGENCY, Anon.ERASE))
    emergency_contact_phone: Mapped[str | None] = mapped_column(Text, **pii(EMERGENCY, Anon.ERASE))
    emergency_contact_relationship: Mapped[str | None] = mapped_column(
        Text, **pii(EMERGENCY, Anon.ERASE)
    )
    emergency_contact_cpf_encrypted: Mapped[bytes | None] = _secret(EMERGENCY)

    # --- LGPD state: a summary of the consent ledger and of data-subject requests ---
    data_consent_status: Mapped[str] = mapped_column(
        Text, default=ConsentStatusSummary.PENDING.value, server_default=text("'pending'")
    )
    data_consent_version: Mapped[str | None] = mapped_column(Text)
    data_retention_until: Mapped[date | None]
    anonymization_scheduled_at: Mapped[datetime | None]
    anonymized_at: Mapped[datetime | None]
    blocked_at: Mapped[datetime | None]
    right_to_forget_requested_at: Mapped[datetime | None]
    data_portability_requested_at: Mapped[datetime | None]
    data_source: Mapped[str | None] = mapped_column(Text)  # e.g. import, api, manual
    registration_source: Mapped[str | None] = mapped_column(Text)  # e.g. front_desk, portal

    # --- no-show ---
    no_show_risk_score: Mapped[int | None] = mapped_column(Integer)
    total_no_shows: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    total_appointments: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_no_show_date: Mapped[date | None]

    # --- lifecycle ---
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    last_visit_date: Mapped[date | None]
    next_appointment_date: Mapped[date | None]
    created_by: Mapped[uuid.UUID | None] = actor_column()
    updated_by: Mapped[uuid.UUID | None] = actor_column()
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    deleted_at: Mapped[datetime | None]  # soft delete
