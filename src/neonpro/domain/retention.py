"""The legal floors of retention: how long the law requires each kind of record to be kept.

A retention policy that would anonymize, block or delete a kind of record sooner than its
floor is refused (``BelowLegalFloor``, a 422 naming the floor). ``keep`` is never refused:
keeping longer is always allowed. The floors (``/work/shared/spec`` regulations and domain):

* clinical records: 20 years after the last entry (Lei 13.787/2018 art. 6; CFM Res.
  1.821/2007), also enforced by a CHECK on ``retention_policies``;
* the audit trail: 10 years (its events on patient and clinical records; accesses to health
  data at least 6 years, 45 CFR 164.528);
* security-incident records (``incident_closed``): 5 years (ANPD Res. 15/2024).

Categories without a floor here (contact, marketing, ...) are still bounded by the erasure
engine: a patient with a clinical record is blocked, never deleted, whatever the policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from neonpro.domain.errors import BelowLegalFloor
from neonpro.domain.vocabulary import DataCategory, RetentionAction, RetentionTrigger

DAYS_PER_YEAR = 365.25


def years_to_days(years: int) -> int:
    """Whole days that cover ``years`` calendar years, leap days included."""
    return math.ceil(years * DAYS_PER_YEAR)


@dataclass(frozen=True)
class Floor:
    years: int
    reference: str

    @property
    def days(self) -> int:
        return years_to_days(self.years)


CATEGORY_FLOORS: dict[DataCategory, Floor] = {
    DataCategory.CLINICAL: Floor(20, "Lei 13.787/2018 art. 6; CFM Res. 1.821/2007"),
    DataCategory.AUDIT: Floor(10, "audit retention: patient and clinical records 10 years; "
                                  "accesses to health data 6 years (45 CFR 164.528)"),
}
TRIGGER_FLOORS: dict[RetentionTrigger, Floor] = {
    RetentionTrigger.INCIDENT_CLOSED: Floor(5, "ANPD Res. 15/2024: incident records 5 years"),
}


def legal_floor(category: DataCategory, trigger: RetentionTrigger,
                action: RetentionAction) -> Floor | None:
    """The longest floor that applies to a policy, or None (``keep``, or no floor)."""
    if action is RetentionAction.KEEP:
        return None
    floors = [f for f in (CATEGORY_FLOORS.get(category), TRIGGER_FLOORS.get(trigger)) if f]
    return max(floors, key=lambda f: f.years, default=None)


def check_floor(category: DataCategory, trigger: RetentionTrigger, action: RetentionAction,
                period_days: int) -> None:
    """Refuse a period below the legal floor of the policy's kind of record."""
    floor = legal_floor(category, trigger, action)
    if floor is not None and period_days < floor.days:
        raise BelowLegalFloor("period_days", floor.days, f"{floor.years} years",
                              floor.reference)
