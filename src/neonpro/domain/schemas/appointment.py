"""Appointment schemas: booking, changes, reads, pages, calendar entries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import Field, model_validator

from neonpro.domain.paging import Page
from neonpro.domain.schemas._types import (
    Day,
    Instant,
    LongText,
    ReadSchema,
    Schema,
    ShortText,
    Tuss,
    Version,
)
from neonpro.domain.vocabulary import (
    AppointmentStatus,
    AppointmentType,
    CancellationReason,
    PaymentStatus,
    PriorAuthStatus,
    Priority,
)

Money = Decimal


class _Window(Schema):
    start_time: Instant
    end_time: Instant

    @model_validator(mode="after")
    def _ordered(self) -> _Window:
        if self.end_time <= self.start_time:
            raise ValueError("end_time must be after start_time")
        return self


class AppointmentCreate(_Window):
    """A booking request; booking rules and the overlap constraint decide if it fits."""

    patient_id: uuid.UUID
    professional_id: uuid.UUID
    service_type_id: uuid.UUID | None = None
    appointment_type: AppointmentType = AppointmentType.IN_PERSON
    priority: Priority = Priority.NORMAL
    room_id: ShortText | None = None
    location: ShortText | None = None
    chief_complaint: LongText | None = None
    tuss_code: Tuss | None = None
    tuss_procedure_name: ShortText | None = None
    clinical_notes: LongText | None = None
    internal_notes: LongText | None = None
    notes: LongText | None = None
    estimated_cost: Money | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    copay_amount: Money | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    insurance_covered: bool = False
    prior_auth_required: bool = False
    prior_auth_number: ShortText | None = None


class AppointmentUpdate(Schema):
    """Edits that do not move the appointment or change its status."""

    version: Version
    appointment_type: AppointmentType | None = None
    priority: Priority | None = None
    room_id: ShortText | None = None
    location: ShortText | None = None
    chief_complaint: LongText | None = None
    tuss_code: Tuss | None = None
    tuss_procedure_name: ShortText | None = None
    clinical_notes: LongText | None = None
    internal_notes: LongText | None = None
    notes: LongText | None = None
    follow_up_required: bool | None = None
    follow_up_date: Day | None = None
    follow_up_instructions: LongText | None = None
    estimated_cost: Money | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    actual_cost: Money | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    copay_amount: Money | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    payment_status: PaymentStatus | None = None
    insurance_covered: bool | None = None
    prior_auth_required: bool | None = None
    prior_auth_number: ShortText | None = None
    prior_auth_status: PriorAuthStatus | None = None
    patient_satisfaction_score: int | None = Field(default=None, ge=1, le=5)
    patient_feedback: LongText | None = None

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set if k != "version"}


class Reschedule(_Window):
    version: Version
    reason: ShortText | None = None


class Cancel(Schema):
    version: Version
    reason: CancellationReason
    fee: Money | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)


class AppointmentRead(ReadSchema):
    """An appointment as the data layer returns it (notes decrypted)."""

    id: uuid.UUID
    clinic_id: uuid.UUID
    patient_id: uuid.UUID
    professional_id: uuid.UUID
    service_type_id: uuid.UUID | None
    start_time: datetime
    end_time: datetime
    time_zone: str | None
    appointment_type: str
    status: str
    priority: str
    room_id: str | None
    location: str | None
    chief_complaint: str | None
    tuss_code: str | None
    tuss_procedure_name: str | None
    clinical_notes: str | None
    internal_notes: str | None
    notes: str | None
    follow_up_required: bool
    follow_up_date: date | None
    follow_up_instructions: str | None
    patient_confirmed: bool
    patient_confirmed_at: datetime | None
    reminder_sent_at: datetime | None
    confirmation_sent_at: datetime | None
    whatsapp_reminder_sent: bool
    sms_reminder_sent: bool
    email_reminder_sent: bool
    reminder_count: int
    no_show_risk_score: int | None
    no_show_model_version: str | None
    no_show_risk_factors: Any
    no_show_predicted_at: datetime | None
    no_show_actual_outcome: str | None
    check_in_time: datetime | None
    check_out_time: datetime | None
    actual_start_time: datetime | None
    actual_end_time: datetime | None
    waiting_minutes: int | None
    cancelled_at: datetime | None
    cancelled_by: uuid.UUID | None
    cancellation_reason: str | None
    cancellation_fee: Decimal | None
    rescheduled_from_id: uuid.UUID | None
    reschedule_count: int
    last_rescheduled_at: datetime | None
    rescheduling_reason: str | None
    estimated_cost: Decimal | None
    actual_cost: Decimal | None
    copay_amount: Decimal | None
    payment_status: str | None
    insurance_covered: bool
    prior_auth_required: bool
    prior_auth_number: str | None
    prior_auth_status: str | None
    patient_satisfaction_score: int | None
    patient_feedback: str | None
    created_by: uuid.UUID
    updated_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    version: int


READ_FIELDS: tuple[str, ...] = tuple(AppointmentRead.model_fields)
AppointmentPage = Page[AppointmentRead]


class CalendarEntry(ReadSchema):
    """One line of a calendar or list: the appointment with its people's names."""

    id: uuid.UUID
    start_time: datetime
    end_time: datetime
    status: str
    appointment_type: str
    patient_id: uuid.UUID
    patient_name: str
    professional_id: uuid.UUID
    professional_name: str
    service_type_id: uuid.UUID | None
    service_name: str | None
    version: int
    no_show_risk_score: int | None = None


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError("window end must be after its start")


@dataclass(frozen=True, slots=True)
class AppointmentFilters:
    status: tuple[AppointmentStatus, ...] = ()
    window: Window | None = None
    professional_id: uuid.UUID | None = None
    patient_id: uuid.UUID | None = None
