"""What the clinic holds about one patient: in full (the LGPD export, Art. 18 II and V) and
in summary (the immediate confirmation, Art. 18 I / 19 I)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from neonpro.domain.schemas.appointment import AppointmentRead
from neonpro.domain.schemas.consent import ConsentRead, ConsentState
from neonpro.domain.schemas.dsr import DataSubjectRequestRead
from neonpro.domain.schemas.patient import PatientRead


@dataclass
class PatientData:
    """Everything held about one patient in one clinic (decrypted, in memory)."""

    clinic_id: uuid.UUID
    patient: PatientRead
    appointments: list[AppointmentRead] = field(default_factory=list)
    professionals: list[dict[str, Any]] = field(default_factory=list)
    consents: list[ConsentRead] = field(default_factory=list)
    consent_states: list[ConsentState] = field(default_factory=list)
    disclosures: list[dict[str, Any]] = field(default_factory=list)
    requests: list[DataSubjectRequestRead] = field(default_factory=list)
    erasures: list[dict[str, Any]] = field(default_factory=list)
    audit_events: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Rows per table (the audit event of an export records these, never values)."""
        return {
            "patients": 1, "appointments": len(self.appointments),
            "professionals": len(self.professionals), "consent_records": len(self.consents),
            "disclosures": len(self.disclosures), "data_subject_requests": len(self.requests),
            "erasure_ledger": len(self.erasures), "audit_events": len(self.audit_events),
        }


@dataclass(frozen=True)
class Holdings:
    """Counts and data categories held about a patient, for the immediate confirmation."""

    counts: dict[str, int]
    categories: list[str]
    first_recorded_at: datetime | None
