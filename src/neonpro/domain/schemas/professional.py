"""Professional schemas."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Any

from pydantic import Field, model_validator

from neonpro.domain.paging import Page
from neonpro.domain.schemas._types import (
    Day,
    EmailStr,
    LocalTime,
    Name,
    PhoneStr,
    ReadSchema,
    Schema,
    ShortText,
    UfStr,
)
from neonpro.domain.vocabulary import CouncilType, CouncilValidation


class _ProfessionalFields(Schema):
    user_id: uuid.UUID | None = None
    specialization: ShortText | None = None
    council_type: CouncilType | None = None
    council_license: ShortText | None = None
    council_state: UfStr | None = None
    council_validation: CouncilValidation | None = None
    license_expiry_date: Day | None = None
    phone: PhoneStr | None = None
    email: EmailStr | None = None
    color: str | None = Field(default=None, pattern=r"^#[0-9A-Fa-f]{6}$")
    is_active: bool | None = None
    work_start_time: time | None = None
    work_end_time: time | None = None
    break_start_time: time | None = None
    break_end_time: time | None = None
    can_work_weekends: bool | None = None
    max_daily_appointments: int | None = Field(default=None, ge=1, le=200)
    appointment_buffer_minutes: int | None = Field(default=None, ge=0, le=240)

    @model_validator(mode="after")
    def _hours(self) -> _ProfessionalFields:
        if (self.work_start_time is None) != (self.work_end_time is None):
            raise ValueError("work_start_time and work_end_time go together")
        start, end = self.work_start_time, self.work_end_time
        if start and end and end <= start:
            raise ValueError("work_end_time must be after work_start_time")
        if (self.break_start_time is None) != (self.break_end_time is None):
            raise ValueError("break_start_time and break_end_time go together")
        return self


class ProfessionalCreate(_ProfessionalFields):
    full_name: Name


class ProfessionalUpdate(_ProfessionalFields):
    full_name: Name | None = None

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set}


class ProfessionalRead(ReadSchema):
    id: uuid.UUID
    clinic_id: uuid.UUID
    user_id: uuid.UUID | None
    full_name: str
    specialization: str | None
    council_type: str | None
    council_license: str | None
    council_state: str | None
    council_validation: str
    license_expiry_date: date | None
    phone: str | None
    email: str | None
    color: str
    is_active: bool
    work_start_time: LocalTime | None
    work_end_time: LocalTime | None
    break_start_time: LocalTime | None
    break_end_time: LocalTime | None
    can_work_weekends: bool
    max_daily_appointments: int
    appointment_buffer_minutes: int
    created_at: datetime
    updated_at: datetime


READ_FIELDS: tuple[str, ...] = tuple(ProfessionalRead.model_fields)
ProfessionalPage = Page[ProfessionalRead]
