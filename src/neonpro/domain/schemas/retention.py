"""Retention policies: a new one as asked for, one as stored, one in force for the engine.

Policies keep their history: created, listed, retired; never changed nor deleted (the
table's guard trigger refuses it). A new period for a category and trigger is a new
policy, once the active one is retired.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field, model_validator

from neonpro.domain.retention import years_to_days
from neonpro.domain.schemas._types import ReadSchema, Schema
from neonpro.domain.vocabulary import DataCategory, RetentionAction, RetentionTrigger

MAX_PERIOD_DAYS = 36_525  # 100 years


class PolicyCreate(Schema):
    data_category: DataCategory
    trigger: RetentionTrigger
    action: RetentionAction
    period_days: int | None = Field(default=None, ge=0, le=MAX_PERIOD_DAYS)
    period_years: int | None = Field(default=None, ge=0, le=100)
    legal_reference: str = Field(min_length=3, max_length=300)

    @model_validator(mode="after")
    def _one_period(self) -> PolicyCreate:
        if (self.period_days is None) == (self.period_years is None):
            raise ValueError("give exactly one of period_days and period_years")
        return self

    @property
    def days(self) -> int:
        if self.period_days is not None:
            return self.period_days
        assert self.period_years is not None  # noqa: S101  (checked by _one_period)
        return years_to_days(self.period_years)


class PolicyRead(ReadSchema):
    id: uuid.UUID
    clinic_id: uuid.UUID
    data_category: str
    trigger: str
    action: str
    period_days: int
    legal_reference: str
    created_at: datetime
    created_by: uuid.UUID | None
    retired_at: datetime | None
    retired_by: uuid.UUID | None

    @property
    def active(self) -> bool:
        return self.retired_at is None


@dataclass(frozen=True)
class PolicyInForce:
    """An active policy that changes something (not ``keep``), as the engine plans it."""

    id: uuid.UUID
    clinic_id: uuid.UUID
    data_category: str
    trigger: str
    period: timedelta
    action: str
    legal_reference: str
