"""Service type schemas: the clinic's catalogue of bookable services."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from neonpro.domain.paging import Page
from neonpro.domain.schemas._types import LongText, Name, ReadSchema, Schema, ShortText, Tuss


class ServiceTypeCreate(Schema):
    name: Name
    description: LongText | None = None
    duration_minutes: int = Field(ge=1, le=24 * 60)
    price: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    category: ShortText | None = None
    tuss_code: Tuss | None = None


class ServiceTypeUpdate(Schema):
    name: Name | None = None
    description: LongText | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    price: Decimal | None = Field(default=None, ge=0, max_digits=10, decimal_places=2)
    category: ShortText | None = None
    tuss_code: Tuss | None = None
    is_active: bool | None = None

    def changes(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.model_fields_set}


class ServiceTypeRead(ReadSchema):
    id: uuid.UUID
    clinic_id: uuid.UUID
    name: str
    description: str | None
    duration_minutes: int
    price: Decimal | None
    category: str | None
    tuss_code: str | None
    is_active: bool
    created_at: datetime
    updated_at: datetime


READ_FIELDS: tuple[str, ...] = tuple(ServiceTypeRead.model_fields)
ServiceTypePage = Page[ServiceTypeRead]
