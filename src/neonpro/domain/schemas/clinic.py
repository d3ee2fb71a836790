"""Clinic and staff schemas."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import available_timezones

from pydantic import Field, field_validator

from neonpro.domain.schemas._types import CnpjStr, EmailStr, Name, ReadSchema, Schema
from neonpro.domain.vocabulary import ClinicRole


class ClinicCreate(Schema):
    name: Name
    legal_name: Name | None = None
    cnpj: CnpjStr | None = None
    cnes_code: str | None = Field(default=None, pattern=r"^[0-9]{7}$")
    timezone: str = "America/Sao_Paulo"
    dpo_name: Name | None = None
    dpo_email: EmailStr | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in available_timezones():
            raise ValueError("unknown IANA time zone")
        return value


class ClinicRead(ReadSchema):
    id: uuid.UUID
    name: str
    legal_name: str | None
    cnpj: str | None
    cnes_code: str | None
    timezone: str
    dpo_name: str | None
    dpo_email: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


class StaffUserCreate(Schema):
    email: EmailStr
    display_name: Name
    password_hash: str = Field(min_length=1, description="an argon2 hash, never a password")


class StaffUserRead(ReadSchema):
    id: uuid.UUID
    email: str
    display_name: str
    is_active: bool
    created_at: datetime


class MembershipRead(ReadSchema):
    clinic_id: uuid.UUID
    user_id: uuid.UUID
    role: ClinicRole
    is_active: bool
