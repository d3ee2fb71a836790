"""One error hierarchy for the whole domain, mapped to HTTP and exit codes at the edges.

Messages never carry personal data (CPF, CNS, name, email, phone, clinical text): they
name the field, the entity type and ids, never the offending value.
"""

from __future__ import annotations

import uuid


class DomainError(Exception):
    """Base of every error a service may raise on purpose."""

    code: str = "domain_error"
    # a refusal (Forbidden, ConsentRequired) once it is recorded in the audit trail: the
    # edges record the refusals nobody recorded yet, and none twice
    audited: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(DomainError):
    """A value or a request breaks a rule; ``field`` names where, never the value."""

    code = "validation_failed"

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


class NotFound(DomainError):
    code = "not_found"

    def __init__(self, entity: str, entity_id: uuid.UUID | str | None = None) -> None:
        suffix = f" {entity_id}" if entity_id is not None else ""
        super().__init__(f"{entity}{suffix} not found")
        self.entity = entity
        self.entity_id = entity_id


class Conflict(DomainError):
    """The request conflicts with the current state (a duplicate, a taken slot, ...)."""

    code = "conflict"

    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.field = field_name


class StaleVersion(Conflict):
    """Optimistic locking: the row changed since the caller read it."""

    code = "stale_version"

    def __init__(self, entity: str, entity_id: uuid.UUID, expected: int) -> None:
        super().__init__(f"{entity} {entity_id} changed since version {expected}")
        self.entity = entity
        self.entity_id = entity_id
        self.expected = expected


class DoubleBooking(Conflict):
    code = "double_booking"

    def __init__(self) -> None:
        super().__init__("professional already booked at that time", "start_time")


class BookingRuleViolation(ValidationFailed):
    """A booking breaks a scheduling rule (working hours, buffer, daily maximum, licence)."""

    code = "booking_rule"


class InvalidTransition(Conflict):
    code = "invalid_transition"

    def __init__(self, entity: str, from_status: str, to_status: str) -> None:
        super().__init__(f"{entity} cannot go from {from_status} to {to_status}", "status")
        self.from_status = from_status
        self.to_status = to_status


class Forbidden(DomainError):
    code = "forbidden"


class NotBlocked(Conflict):
    """A legal-hold read of a record that is not blocked: it is read the ordinary way."""

    code = "not_blocked"

    def __init__(self, entity: str, entity_id: uuid.UUID) -> None:
        super().__init__(f"{entity} {entity_id} is not blocked under a legal hold: read it "
                         "through the ordinary API")
        self.entity_id = entity_id


class BelowLegalFloor(ValidationFailed):
    """A retention period shorter than the law's minimum for that kind of record."""

    code = "below_legal_floor"

    def __init__(self, field_name: str, floor_days: int, floor: str, reference: str) -> None:
        super().__init__(field_name, f"below the legal floor of {floor} ({floor_days} days; "
                                     f"{reference})")
        self.floor_days = floor_days


class Unauthenticated(DomainError):
    """No valid credentials (a missing, expired or invalid token, a failed login)."""

    code = "unauthenticated"


class ClinicNotChosen(Unauthenticated):
    """The password was right, but the account belongs to several clinics and none was
    named: no session is opened. ``clinics`` (id, name, role), said only to whoever gave
    the right password, so a sign-in form can offer them; the API answers the same 401."""

    def __init__(self, message: str, clinics: list[tuple[uuid.UUID, str, str]]) -> None:
        super().__init__(message)
        self.clinics = clinics


class TooManyAttempts(DomainError):
    """Too many failed sign-ins from this address, for this e-mail, or both: wait
    ``retry_after_s`` seconds. Said before any password is checked, and the same for an
    e-mail nobody has: it tells nothing about the account or the password."""

    code = "too_many_attempts"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many failed sign-ins: try again later")
        self.retry_after_s = max(1, retry_after_s)


class ConsentRequired(DomainError):
    code = "consent_required"

    def __init__(self, purpose: str) -> None:
        super().__init__(f"no granted, unexpired consent for purpose {purpose}")
        self.purpose = purpose


class Gone(DomainError):
    """The record was there and is no more, for good: nothing may be written to it."""

    code = "gone"


class PatientErased(Gone):
    """The patient was erased (anonymized, or blocked under a legal hold): a correction would
    put personal data back."""

    code = "patient_erased"

    def __init__(self, patient_id: uuid.UUID) -> None:
        super().__init__(f"patient {patient_id} was erased: its data can no longer be "
                         "corrected")
        self.entity_id = patient_id


class PatientDeleted(Gone):
    code = "patient_deleted"

    def __init__(self, patient_id: uuid.UUID) -> None:
        super().__init__(f"patient {patient_id} was deleted: its data can no longer be "
                         "corrected")
        self.entity_id = patient_id


class OperationFailed(DomainError):
    """An operator's task (a backup or restore, point-in-time recovery, a key rotation)
    cannot go on; the message says why and is safe to show (never a value). Raised by the
    services the CLI runs, answered there as one line and exit 1 (or the command's own
    code); no HTTP operation runs these tasks."""

    code = "operation_failed"


class IdempotencyKeyTaken(Conflict):
    """Another attempt with the same idempotency key took it over while this one ran (this
    one was presumed abandoned): this one's work is rolled back, the other's stands."""

    code = "idempotency_key_taken_over"

    def __init__(self) -> None:
        super().__init__("another request with the same Idempotency-Key took it over; this "
                         "one was rolled back")
