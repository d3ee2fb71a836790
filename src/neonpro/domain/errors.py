"""One error hierarchy for the whole domain, mapped to HTTP and exit codes at the edges.

Messages never carry personal data (CPF, CNS, name, email, phone, clinical text): they
name the field, the entity type and ids, never the offending value.
"""

from __future__ import annotations

import uuid


class DomainError(Exception):
    """Base of every error a service may raise on purpose."""

    code: str = "domain_error"

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


class Unauthenticated(DomainError):
    """No valid credentials (a missing, expired or invalid token, a failed login)."""

    code = "unauthenticated"


class Locked(DomainError):
    """Too many failed logins: the account is locked for a while."""

    code = "account_locked"


class ConsentRequired(DomainError):
    code = "consent_required"

    def __init__(self, purpose: str) -> None:
        super().__init__(f"no granted, unexpired consent for purpose {purpose}")
        self.purpose = purpose
