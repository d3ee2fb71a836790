"""What a run reports: its result (with a deterministic fingerprint) and its errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from neonpro.domain.errors import Conflict

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phases are ``patients`` and ``appointments``."""

Outcome = tuple[int, int, int, int, int, str, int]
"""(day relative to today, start minute, clinic, professional, patient, status, reschedules)."""


class DemoSeedExists(Conflict):
    """The clinics of this seed are already there (their CNPJs are taken)."""

    def __init__(self, seed: int) -> None:
        super().__init__(f"demo data for seed {seed} already exists; use another --seed",
                         "cnpj")
        self.seed = seed


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What one run created. ``outcomes`` is the run's deterministic fingerprint."""

    seed: int
    months: int
    first_day: date
    today: date
    last_day: date
    clinics: list[uuid.UUID]
    users: list[uuid.UUID]
    professionals: list[uuid.UUID]
    service_types: list[uuid.UUID]
    patients: list[uuid.UUID]
    consents: int
    appointments: int
    statuses: dict[str, int]
    skipped_slots: int
    seconds: float
    outcomes: list[Outcome] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """Ids as strings, counts, the date range (no personal data)."""
        return {
            "seed": self.seed, "months": self.months,
            "from": self.first_day.isoformat(), "today": self.today.isoformat(),
            "to": self.last_day.isoformat(),
            "clinics": [str(i) for i in self.clinics], "users": [str(i) for i in self.users],
            "professionals": [str(i) for i in self.professionals],
            "service_types": [str(i) for i in self.service_types],
            "patients": [str(i) for i in self.patients], "consents": self.consents,
            "appointments": self.appointments, "statuses": self.statuses,
            "skipped_slots": self.skipped_slots, "seconds": round(self.seconds, 2),
        }
