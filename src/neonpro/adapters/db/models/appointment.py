"""Appointments: scheduling, clinical summary, reminders, no-show prediction, billing.

A professional is never double-booked: the exclusion constraint
``ex_appointments_no_overlap`` (GiST, needs the ``btree_gist`` extension) rejects
two appointments of one professional whose ``[start_time, end_time)`` ranges
overlap while both are in an active status (``ACTIVE_APPOINTMENT_STATUSES``).
Half-open ranges let back-to-back appointments through; cancelled, no-show and
rescheduled ones do not block. A reschedule is a new row whose
``rescheduled_from_id`` points at the old one.
"""

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID, ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TenantMixin, TimestampMixin, table_args, uuid_pk
from neonpro.adapters.db.models._checks import (
    TUSS,
    ck_in,
    ck_non_negative,
    ck_range,
    ck_regex,
    ck_version,
    in_values,
)
from neonpro.adapters.db.models._columns import (
    actor_column,
    pii,
    required_actor_column,
    tenant_fk,
)
from neonpro.domain.vocabulary import (
    ACTIVE_APPOINTMENT_STATUSES,
    AppointmentStatus,
    AppointmentType,
    CancellationReason,
    NoShowOutcome,
    PaymentStatus,
    PriorAuthStatus,
    Priority,
)
from neonpro.domain.vocabulary import AnonymizationRule as Anon
from neonpro.domain.vocabulary import DataCategory as Cat

MONEY_COLUMNS = ("estimated_cost", "actual_cost", "copay_amount", "cancellation_fee")

NO_OVERLAP = ExcludeConstraint(
    ("clinic_id", "="),
    ("professional_id", "="),
    (text("tstzrange(start_time, end_time, '[)')"), "&&"),
    name="ex_appointments_no_overlap",
    using="gist",
    where=text(in_values("status", ACTIVE_APPOINTMENT_STATUSES)),
)


def _money() -> Mapped[Decimal | None]:
    return mapped_column(Numeric(10, 2))


def _flag() -> Mapped[bool]:
    return mapped_column(Boolean, default=False, server_default=text("false"))


def _counter() -> Mapped[int]:
    return mapped_column(Integer, default=0, server_default=text("0"))


class Appointment(TenantMixin, TimestampMixin, Base):
    """One booking of a patient with a professional."""

    __tablename__ = "appointments"
    __table_args__ = table_args(
        "tenant",
        tenant_fk("patient_id", "patients", nullable=False),
        tenant_fk("professional_id", "professionals", nullable=False),
        tenant_fk("service_type_id", "service_types", nullable=True),
        tenant_fk("rescheduled_from_id", "appointments", nullable=True),
        NO_OVERLAP,
        Index(None, "clinic_id", "start_time"),
        Index(None, "clinic_id", "patient_id", "start_time"),
        Index(None, "clinic_id", "professional_id", "start_time"),
        Index(None, "clinic_id", "status", "start_time"),
        Index(None, "clinic_id", "no_show_risk_score"),
        Index(None, "clinic_id", "tuss_code"),
        Index(None, "clinic_id", "service_type_id"),
        Index(None, "clinic_id", "rescheduled_from_id"),
        CheckConstraint("end_time > start_time", name="end_after_start"),
        ck_in("appointment_type", AppointmentType),
        ck_in("status", AppointmentStatus),
        ck_in("priority", Priority),
        ck_in("cancellation_reason", CancellationReason),
        ck_in("payment_status", PaymentStatus),
        ck_in("prior_auth_status", PriorAuthStatus),
        ck_in("no_show_actual_outcome", NoShowOutcome),
        ck_regex("tuss_code", TUSS),
        ck_range("no_show_risk_score", 0, 100),
        ck_range("patient_satisfaction_score", 1, 5),
        *(ck_non_negative(name) for name in MONEY_COLUMNS),
        ck_non_negative("reminder_count"),
        ck_non_negative("reschedule_count"),
        ck_non_negative("waiting_minutes"),
        CheckConstraint("check_out_time >= check_in_time", name="check_out_after_check_in"),
        CheckConstraint("actual_end_time >= actual_start_time", name="actual_end_after_start"),
        CheckConstraint("rescheduled_from_id <> id", name="not_rescheduled_from_itself"),
        ck_version(),
    )

    id: Mapped[uuid.UUID] = uuid_pk()

    # --- scheduling ---
    patient_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    professional_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    service_type_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    start_time: Mapped[datetime]
    end_time: Mapped[datetime]
    time_zone: Mapped[str] = mapped_column(
        Text, default="America/Sao_Paulo", server_default=text("'America/Sao_Paulo'")
    )
    appointment_type: Mapped[str] = mapped_column(
        Text, default=AppointmentType.IN_PERSON.value, server_default=text("'in_person'")
    )
    status: Mapped[str] = mapped_column(
        Text, default=AppointmentStatus.SCHEDULED.value, server_default=text("'scheduled'")
    )
    priority: Mapped[str] = mapped_column(
        Text, default=Priority.NORMAL.value, server_default=text("'normal'")
    )
    room_id: Mapped[str | None] = mapped_column(Text)  # free room label/id: no rooms table yet
    location: Mapped[str | None] = mapped_column(Text)

    # --- clinical ---
    chief_complaint: Mapped[str | None] = mapped_column(Text, **pii(Cat.CLINICAL, Anon.ERASE))
    tuss_code: Mapped[str | None] = mapped_column(Text)
    tuss_procedure_name: Mapped[str | None] = mapped_column(Text)
    clinical_notes_encrypted: Mapped[bytes | None] = mapped_column(
        LargeBinary, **pii(Cat.CLINICAL, Anon.ERASE, "ciphertext")
    )
    internal_notes_encrypted: Mapped[bytes | None] = mapped_column(
        LargeBinary, **pii(Cat.CLINICAL, Anon.ERASE, "ciphertext; staff only")
    )
    notes: Mapped[str | None] = mapped_column(
        Text, **pii(Cat.CLINICAL, Anon.ERASE, "patient-visible")
    )
    follow_up_required: Mapped[bool] = _flag()
    follow_up_date: Mapped[date | None]
    follow_up_instructions: Mapped[str | None] = mapped_column(
        Text, **pii(Cat.CLINICAL, Anon.ERASE)
    )

    # --- confirmation and reminders ---
    patient_confirmed: Mapped[bool] = _flag()
    patient_confirmed_at: Mapped[datetime | None]
    reminder_sent_at: Mapped[datetime | None]
    confirmation_sent_at: Mapped[datetime | None]
    whatsapp_reminder_sent: Mapped[bool] = _flag()
    sms_reminder_sent: Mapped[bool] = _flag()
    email_reminder_sent: Mapped[bool] = _flag()
    reminder_count: Mapped[int] = _counter()

    # --- no-show prediction ---
    no_show_risk_score: Mapped[int | None] = mapped_column(Integer)
    no_show_model_version: Mapped[str | None] = mapped_column(Text)
    no_show_risk_factors: Mapped[dict[str, Any]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    no_show_predicted_at: Mapped[datetime | None]
    no_show_actual_outcome: Mapped[str | None] = mapped_column(Text)

    # --- front desk ---
    check_in_time: Mapped[datetime | None]
    check_out_time: Mapped[datetime | None]
    actual_start_time: Mapped[datetime | None]
    actual_end_time: Mapped[datetime | None]
    waiting_minutes: Mapped[int | None] = mapped_column(Integer)

    # --- cancellation and rescheduling ---
    cancelled_at: Mapped[datetime | None]
    blocked_at: Mapped[datetime | None] = mapped_column(
        comment="set by an erasure under legal hold: hidden from the application role")
    cancelled_by: Mapped[uuid.UUID | None] = actor_column()
    cancellation_reason: Mapped[str | None] = mapped_column(Text)
    cancellation_fee: Mapped[Decimal | None] = _money()
    rescheduled_from_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    reschedule_count: Mapped[int] = _counter()
    last_rescheduled_at: Mapped[datetime | None]
    rescheduling_reason: Mapped[str | None] = mapped_column(Text)

    # --- billing (BRL) ---
    estimated_cost: Mapped[Decimal | None] = _money()
    actual_cost: Mapped[Decimal | None] = _money()
    copay_amount: Mapped[Decimal | None] = _money()
    payment_status: Mapped[str] = mapped_column(
        Text, default=PaymentStatus.PENDING.value, server_default=text("'pending'")
    )
    insurance_covered: Mapped[bool] = _flag()
    prior_auth_required: Mapped[bool] = _flag()
    prior_auth_number: Mapped[str | None] = mapped_column(Text, **pii(Cat.INSURANCE, Anon.ERASE))
    prior_auth_status: Mapped[str] = mapped_column(
        Text, default=PriorAuthStatus.NOT_REQUIRED.value, server_default=text("'not_required'")
    )

    # --- feedback ---
    patient_satisfaction_score: Mapped[int | None] = mapped_column(SmallInteger)
    patient_feedback: Mapped[str | None] = mapped_column(
        Text, **pii(Cat.CLINICAL, Anon.ERASE, "free text")
    )

    # --- bookkeeping ---
    created_by: Mapped[uuid.UUID] = required_actor_column()
    updated_by: Mapped[uuid.UUID | None] = actor_column()
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
