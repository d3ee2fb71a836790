"""Every table model, and ``Base`` whose metadata then holds the complete schema."""

from neonpro.adapters.db.base import Base
from neonpro.adapters.db.models.appointment import Appointment
from neonpro.adapters.db.models.audit import (
    SYSTEM_CLINIC_ID,
    AuditChainAnchor,
    AuditChainCut,
    AuditEvent,
    AuditRefKey,
)
from neonpro.adapters.db.models.clinic import Clinic
from neonpro.adapters.db.models.consent import ConsentRecord
from neonpro.adapters.db.models.durability import CommitToken, IdempotencyKey
from neonpro.adapters.db.models.erasure import ErasureLedgerEntry
from neonpro.adapters.db.models.lgpd import (
    DataSubjectRequest,
    Disclosure,
    RetentionPolicy,
    SecurityIncident,
)
from neonpro.adapters.db.models.noshow import AppointmentRiskScore, NoShowModel
from neonpro.adapters.db.models.patient import Patient
from neonpro.adapters.db.models.professional import Professional
from neonpro.adapters.db.models.service_type import ServiceType
from neonpro.adapters.db.models.signin import LoginThrottle, StaffSession, TrustedSignIn
from neonpro.adapters.db.models.staff import ClinicMembership, StaffUser

__all__ = [
    "SYSTEM_CLINIC_ID",
    "Appointment",
    "AppointmentRiskScore",
    "AuditChainAnchor",
    "AuditChainCut",
    "AuditEvent",
    "AuditRefKey",
    "Base",
    "Clinic",
    "ClinicMembership",
    "CommitToken",
    "ConsentRecord",
    "DataSubjectRequest",
    "Disclosure",
    "ErasureLedgerEntry",
    "IdempotencyKey",
    "LoginThrottle",
    "NoShowModel",
    "Patient",
    "Professional",
    "RetentionPolicy",
    "SecurityIncident",
    "ServiceType",
    "StaffSession",
    "StaffUser",
    "TrustedSignIn",
]
