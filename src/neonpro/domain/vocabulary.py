"""Closed vocabularies of the domain, as string enums.

Pure Python: the database stores these values as text guarded by a CHECK
constraint generated from the enum (``adapters/db/models/_checks.py``), so
adding a member here means a migration that rewrites that CHECK.
"""

from __future__ import annotations

from enum import StrEnum

# --- Clinic, staff, professionals ------------------------------------------------------


class ClinicRole(StrEnum):
    ADMIN = "admin"
    PROFESSIONAL = "professional"
    RECEPTIONIST = "receptionist"
    DPO = "dpo"  # data-protection officer (LGPD "encarregado"): audit and LGPD data only


class CouncilType(StrEnum):
    """Brazilian regional professional councils that issue a practice licence."""

    CRM = "CRM"  # medicine
    CRO = "CRO"  # dentistry
    COREN = "COREN"  # nursing
    CRF = "CRF"  # pharmacy
    CREFITO = "CREFITO"  # physiotherapy and occupational therapy
    CRP = "CRP"  # psychology
    CRN = "CRN"  # nutrition
    CRBM = "CRBM"  # biomedicine (aesthetic biomedicine is common in clinics)
    CRFA = "CRFa"  # speech therapy (fonoaudiologia)
    CREF = "CREF"  # physical education
    CRESS = "CRESS"  # social work
    CRTR = "CRTR"  # radiology technicians
    OTHER = "OTHER"


class CouncilValidation(StrEnum):
    PENDING = "pending"
    VALIDATED = "validated"
    REJECTED = "rejected"


# --- Patients --------------------------------------------------------------------------


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class MaritalStatus(StrEnum):
    SINGLE = "single"
    MARRIED = "married"
    STABLE_UNION = "stable_union"  # união estável
    SEPARATED = "separated"
    DIVORCED = "divorced"
    WIDOWED = "widowed"
    UNKNOWN = "unknown"


class ConsentStatusSummary(StrEnum):
    """``patients.data_consent_status``: a summary of the consent ledger."""

    PENDING = "pending"
    GIVEN = "given"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class PreferredContactMethod(StrEnum):
    PHONE = "phone"
    SMS = "sms"
    WHATSAPP = "whatsapp"
    EMAIL = "email"
    MAIL = "mail"


class BloodType(StrEnum):
    A_POS = "A+"
    A_NEG = "A-"
    B_POS = "B+"
    B_NEG = "B-"
    AB_POS = "AB+"
    AB_NEG = "AB-"
    O_POS = "O+"
    O_NEG = "O-"


# --- Appointments ----------------------------------------------------------------------


class AppointmentType(StrEnum):
    IN_PERSON = "in_person"
    TELEMEDICINE = "telemedicine"
    HYBRID = "hybrid"


class AppointmentStatus(StrEnum):
    SCHEDULED = "scheduled"
    CONFIRMED = "confirmed"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    RESCHEDULED = "rescheduled"


ACTIVE_APPOINTMENT_STATUSES: tuple[AppointmentStatus, ...] = (
    AppointmentStatus.SCHEDULED,
    AppointmentStatus.CONFIRMED,
    AppointmentStatus.IN_PROGRESS,
    AppointmentStatus.COMPLETED,
)
"""Statuses that occupy a professional's time (the no-overlap exclusion constraint)."""


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class CancellationReason(StrEnum):
    PATIENT = "patient"
    PROFESSIONAL = "professional"
    CLINIC = "clinic"
    NO_SHOW = "no_show"
    MEDICAL = "medical"
    SCHEDULING_ERROR = "scheduling_error"
    OTHER = "other"


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    PARTIALLY_PAID = "partially_paid"
    REFUNDED = "refunded"
    WAIVED = "waived"
    INSURANCE_PENDING = "insurance_pending"


class PriorAuthStatus(StrEnum):
    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


class NoShowOutcome(StrEnum):
    ATTENDED = "attended"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class NoShowModelKind(StrEnum):
    LOGISTIC = "logistic"  # a logistic regression fitted on the clinic's history
    PRIOR = "prior"  # too little history: the patient's smoothed past no-show rate


# --- Consent ---------------------------------------------------------------------------


class ConsentPurpose(StrEnum):
    TREATMENT = "treatment"
    DATA_PROCESSING = "data_processing"
    MARKETING = "marketing"
    RESEARCH = "research"
    DATA_SHARING = "data_sharing"
    TELEMEDICINE = "telemedicine"
    IMAGE_USE = "image_use"
    INSURANCE_SHARING = "insurance_sharing"
    EMERGENCY_CONTACT = "emergency_contact"


class LegalBasis(StrEnum):
    """LGPD legal bases (Art. 7 and, for health data, Art. 11)."""

    CONSENT = "consent"
    LEGAL_OBLIGATION = "legal_obligation"
    HEALTH_PROTECTION = "health_protection"
    RESEARCH = "research"
    RIGHTS_EXERCISE = "rights_exercise"
    LIFE_PROTECTION = "life_protection"
    FRAUD_PREVENTION = "fraud_prevention"
    CONTRACT = "contract"  # Art. 7 V: not a basis for sensitive (health) data
    LEGITIMATE_INTEREST = "legitimate_interest"  # Art. 7 IX: not for sensitive data


class ConsentStatus(StrEnum):
    PENDING = "pending"
    GRANTED = "granted"
    REVOKED = "revoked"
    EXPIRED = "expired"


class CollectionMethod(StrEnum):
    WRITTEN = "written"
    DIGITAL_SIGNATURE = "digital_signature"
    ONLINE_FORM = "online_form"
    VERBAL_RECORDED = "verbal_recorded"


# --- Audit -----------------------------------------------------------------------------


class AuditAction(StrEnum):
    VIEW = "VIEW"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    EXPORT = "EXPORT"
    LOGIN = "LOGIN"
    LOGOUT = "LOGOUT"
    LOGIN_FAILED = "LOGIN_FAILED"
    CONSENT_GRANTED = "CONSENT_GRANTED"
    CONSENT_REVOKED = "CONSENT_REVOKED"
    CONSENT_EXPIRED = "CONSENT_EXPIRED"
    ANONYMIZE = "ANONYMIZE"
    BLOCK = "BLOCK"
    UNBLOCK = "UNBLOCK"
    BACKUP = "BACKUP"
    RESTORE = "RESTORE"
    VERIFY = "VERIFY"
    LEGAL_HOLD_READ = "LEGAL_HOLD_READ"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    TELEMEDICINE_START = "TELEMEDICINE_START"
    TELEMEDICINE_END = "TELEMEDICINE_END"
    TELEMEDICINE_JOIN = "TELEMEDICINE_JOIN"
    TELEMEDICINE_LEAVE = "TELEMEDICINE_LEAVE"
    RECORDING_CONSENT = "RECORDING_CONSENT"
    RETENTION = "RETENTION"
    KEY_ROTATION = "KEY_ROTATION"
    INCIDENT = "INCIDENT"


class AuditResource(StrEnum):
    """What an audit event is about (its ``resource_type``): one spelling per resource,
    written by every ``audit.record(...)`` of the application and used by the audit filters.

    Reads and changes of one record and list reads name the resource in the singular (a
    list read has no ``resource_id``). The other spellings are kept because stored rows, the
    audit SQL or the docs rely on them (rows already written keep their value): the
    plural names of the LGPD registers (``data_subject_requests``, ``disclosures``,
    ``retention_policies``), ``encryption_keys`` (docs/keys.md), ``audit_events`` (also
    written by the pruning SQL). Row changes are named by the database's row-change
    trigger after their table (``patients``, ``appointments``, ``consent_records``...: the
    ``*_TABLE`` members), which the retention function (10 years for ``patients`` and
    ``appointments``) and the investigation read; list reads written before this enum
    said ``appointments``, ``patients`` and ``security_incidents``. A refused API request
    names its route's family instead (its OpenAPI tag, docs/audit.md).
    """

    # application events
    PATIENT = "patient"
    APPOINTMENT = "appointment"
    APPOINTMENT_FEED = "appointment_feed"
    APPOINTMENT_RISK_SCORES = "appointment_risk_scores"
    NO_SHOW_MODEL = "no_show_model"
    PATIENT_IMPORT = "patient_import"
    STAFF_USER = "staff_user"
    CLINIC_MEMBERSHIP = "clinic_membership"
    DATA_SUBJECT_REQUESTS = "data_subject_requests"
    DISCLOSURES = "disclosures"
    RETENTION_POLICIES = "retention_policies"
    SECURITY_INCIDENT = "security_incident"
    ERASURE_LEDGER = "erasure_ledger"
    AUDIT_EVENTS = "audit_events"
    AUDIT_CHECKPOINT = "audit_checkpoint"
    COMPLIANCE_REPORT = "compliance_report"
    ENCRYPTION_KEYS = "encryption_keys"
    BACKUP = "backup"
    # row changes, named after their table by the database (the row-change trigger and
    # the consent-evidence function, in migrations)
    # (``disclosures`` and ``data_subject_requests``: the members above)
    PATIENTS_TABLE = "patients"
    APPOINTMENTS_TABLE = "appointments"
    CONSENT_RECORDS_TABLE = "consent_records"
    PROFESSIONALS_TABLE = "professionals"
    STAFF_USERS_TABLE = "staff_users"
    CLINIC_MEMBERSHIPS_TABLE = "clinic_memberships"
    SECURITY_INCIDENTS_TABLE = "security_incidents"


class AuditStatus(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    BLOCKED = "blocked"


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


# --- LGPD: data-subject rights, retention, incidents ----------------------------------


class DataSubjectRequestKind(StrEnum):
    """The data subject's rights of LGPD Art. 18."""

    CONFIRMATION = "confirmation"  # I
    ACCESS = "access"  # II
    CORRECTION = "correction"  # III
    ANONYMIZATION = "anonymization"  # IV
    BLOCKING = "blocking"  # IV
    DELETION = "deletion"  # IV and VI
    PORTABILITY = "portability"  # V
    SHARING_INFORMATION = "sharing_information"  # VII
    CONSENT_REVOCATION = "consent_revocation"  # IX


class DataSubjectRequestStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    FULFILLED = "fulfilled"
    REFUSED = "refused"


class RetentionTrigger(StrEnum):
    LAST_CLINICAL_ENTRY = "last_clinical_entry"
    CONSENT_REVOKED = "consent_revoked"
    INACTIVITY = "inactivity"
    REQUEST_FULFILLED = "request_fulfilled"
    INCIDENT_CLOSED = "incident_closed"


class RetentionAction(StrEnum):
    ANONYMIZE = "anonymize"
    BLOCK = "block"
    DELETE = "delete"
    KEEP = "keep"


class DataCategory(StrEnum):
    IDENTIFICATION = "identification"
    CONTACT = "contact"
    ADDRESS = "address"
    CLINICAL = "clinical"
    INSURANCE = "insurance"
    EMERGENCY_CONTACT = "emergency_contact"
    CONSENT = "consent"
    FINANCIAL = "financial"
    MARKETING = "marketing"
    IMAGES = "images"
    AUDIT = "audit"


class AnonymizationRule(StrEnum):
    """What anonymization does to a personal-data column (documented on each column)."""

    ERASE = "erase"  # set to NULL / empty
    REPLACE = "replace"  # overwrite with a fixed, non-identifying placeholder
    GENERALIZE = "generalize"  # coarsen (birth date to year, CEP to region)
    KEEP = "keep"  # not identifying on its own once the identifiers are gone


class ExportFormat(StrEnum):
    """The format of an access/portability export (LGPD art. 18 II and V)."""

    JSON = "json"
    FHIR = "fhir"


class IncidentStatus(StrEnum):
    OPEN = "open"
    CONTAINED = "contained"
    CLOSED = "closed"


# --- Geography -------------------------------------------------------------------------

UF_CODES: tuple[str, ...] = (
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA",
    "PB", "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
)  # fmt: skip
"""The 26 states and the Federal District."""
