"""Translate database errors into domain errors, by constraint name, never by message text.

The driver's message and DETAIL carry the offending values (a CPF in a unique violation,
say); nothing here copies them. Logs get the SQLSTATE and the constraint name only.
"""

from __future__ import annotations

import psycopg.errors
import structlog
from sqlalchemy.exc import DBAPIError

from neonpro.domain.errors import (
    Conflict,
    DomainError,
    DoubleBooking,
    Forbidden,
    NotFound,
    ValidationFailed,
)

log = structlog.get_logger(__name__)

# constraint name -> the API field a caller would correct
UNIQUE_FIELDS: dict[str, str] = {
    "uq_patients_clinic_id_cpf_blind_index": "cpf",
    "uq_patients_clinic_id_cns_blind_index": "cns",
    "uq_patients_clinic_id_medical_record_number": "medical_record_number",
    "uq_clinics_cnpj": "cnpj",
    "uq_staff_users_lower_email": "email",
}

# foreign key name fragment -> the referenced entity
FK_ENTITIES: dict[str, str] = {
    "_patients": "patient",
    "_professionals": "professional",
    "_service_types": "service_type",
    "_appointments": "appointment",
    "_consent_records": "consent",
    "_clinics": "clinic",
    "_staff_users": "staff_user",
}


def constraint_name(exc: DBAPIError) -> str:
    diag = getattr(exc.orig, "diag", None)
    return str(getattr(diag, "constraint_name", "") or "")


def _field_from(constraint: str, prefix: str) -> str:
    # uq_patients_clinic_id_cpf_blind_index -> cpf_blind_index (best effort)
    parts = constraint.removeprefix(prefix).split("_clinic_id_", 1)
    return parts[-1] if parts else constraint


def translate(exc: DBAPIError) -> DomainError | None:  # noqa: PLR0911  (one return per kind)
    """The domain error for a constraint violation, or None if it is not one."""
    orig = exc.orig
    name = constraint_name(exc)
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(orig, psycopg.errors.ExclusionViolation) and "no_overlap" in name:
        return DoubleBooking()
    if isinstance(orig, psycopg.errors.UniqueViolation):
        field = UNIQUE_FIELDS.get(name) or _field_from(name, "uq_")
        return Conflict(f"another record already has this {field}", field)
    if isinstance(orig, psycopg.errors.ForeignKeyViolation):
        entity = next((e for k, e in FK_ENTITIES.items() if name.endswith(k)), "referenced record")
        detail = str(getattr(getattr(orig, "diag", None), "message_detail", "") or "")
        if "still referenced" in detail:
            return Conflict(f"{entity} is still referenced by other records")
        return NotFound(entity)
    if isinstance(orig, psycopg.errors.CheckViolation):
        field = name.removeprefix("ck_").split("_", 1)[-1] if name else "value"
        return ValidationFailed(field, "violates a data rule of the database")
    if isinstance(orig, psycopg.errors.NotNullViolation):
        column = str(getattr(getattr(orig, "diag", None), "column_name", "") or "value")
        return ValidationFailed(column, "is required")
    if isinstance(orig, psycopg.DataError):  # class 22: out of range, bad text, NUL bytes
        return ValidationFailed("value", "is not a value the database can store")
    if isinstance(orig, psycopg.errors.InsufficientPrivilege):
        return Forbidden("the database refused this operation for your clinic or role")
    log.debug("db_error_untranslated", sqlstate=sqlstate, constraint=name)
    return None
