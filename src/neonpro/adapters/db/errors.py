"""Translate database errors into domain errors, by constraint name, never by message text.

The driver's message and DETAIL carry the offending values (a CPF in a unique violation,
say); nothing here copies them. Logs get what an operator needs to find the statement and
the rule it broke, never what it carried: :func:`describe` (the error class, SQLSTATE,
constraint name and the statement's origin, the repository class and method that ran it).
"""

from __future__ import annotations

import re
from types import FrameType, TracebackType
from typing import Any

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
    "_clinic_memberships": "clinic_membership",
    "_data_subject_requests": "data_subject_request",
}

# foreign keys that tie a reference to the row's own clinic (and patient) beyond existence
# (migration 0014; the erasure ledger's request by trigger, erasure_sql.py): the field a
# caller would correct and the rule, never the values
FK_FIELDS: dict[str, tuple[str, str]] = {
    "fk_professionals_clinic_id_user_id_clinic_memberships": (
        "user_id", "is not a staff member of this clinic"),
    "fk_disclosures_same_patient_consent_records": (
        "consent_record_id", "is not a consent of this patient in this clinic"),
    "fk_consent_records_same_patient_consent_records": (
        "supersedes_id", "is not a consent of this patient in this clinic"),
    "fk_erasure_ledger_request_data_subject_requests": (
        "request_id", "is not a data-subject request of this patient"),
}


_ORIGIN = "neonpro_origin"  # the attribute :func:`mark_origin` sets on the exception
# modules that only pass statements through: never the origin of one
_PLUMBING = frozenset({"neonpro.adapters.db.repositories._base", "neonpro.adapters.db.errors",
                       "neonpro.adapters.db.database", "neonpro.adapters.db.hot"})
_LIBRARIES = ("sqlalchemy", "psycopg")


def _name_of(frame: FrameType) -> str:
    owner = frame.f_locals.get("self")
    code = frame.f_code
    if owner is not None:
        return f"{type(owner).__name__}.{code.co_name}"
    return f"{frame.f_globals.get('__name__', '?')}.{code.co_qualname}"


def repository_origin(repository: object, caller: FrameType | None) -> str:
    """``Class.method`` of the repository call that ran a statement: the outermost method
    of ``repository`` on the stack from ``caller`` out (with the helper that executed it,
    when it is another method: ``SqlAppointmentRepository.reschedule/_insert``). Walks
    the stack only when a statement failed: nothing is paid on the way that succeeds."""
    inner = outer = None
    frame = caller
    while frame is not None and frame.f_locals.get("self") is repository:
        inner = inner or frame
        outer = frame
        frame = frame.f_back
    if outer is None or inner is None:
        return type(repository).__name__
    name = f"{type(repository).__name__}.{outer.f_code.co_name}"
    return name if inner is outer else f"{name}/{inner.f_code.co_name}"


def mark_origin(exc: BaseException, origin: str) -> None:
    """Remember where ``exc`` came from (the first mark wins: the innermost knows best)."""
    if getattr(exc, _ORIGIN, None) is None:
        setattr(exc, _ORIGIN, origin)


def _origin_from_traceback(tb: TracebackType | None) -> str | None:
    """The innermost frame of a traceback that is neither the driver, SQLAlchemy nor
    plumbing: where a statement that no repository ran (a query module, a service's own
    SQL) was executed."""
    found = None
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if not module.startswith(_LIBRARIES) and module not in _PLUMBING:
            found = tb.tb_frame
        tb = tb.tb_next
    return _name_of(found) if found is not None else None


def origin_of(exc: BaseException) -> str | None:
    """The statement's origin: as marked by the repository that ran it, else read from the
    traceback."""
    marked = getattr(exc, _ORIGIN, None)
    return str(marked) if marked else _origin_from_traceback(exc.__traceback__)


def describe(exc: BaseException) -> dict[str, Any]:
    """The fields of a database error's log line: the driver's error class, SQLSTATE,
    constraint name and origin. Never the message or DETAIL (they carry the values)."""
    orig = getattr(exc, "orig", None) or exc
    return {
        "db_error": type(orig).__name__,
        "sqlstate": getattr(orig, "sqlstate", None),
        "constraint": (constraint_name(exc) if isinstance(exc, DBAPIError) else "") or None,
        "origin": origin_of(exc),
    }


def summary(exc: BaseException) -> str:
    """:func:`describe` as one line for a person (the CLI's error message)."""
    fields = describe(exc)
    parts = [f"SQLSTATE {fields['sqlstate']}" if fields["sqlstate"] else None,
             f"constraint {fields['constraint']}" if fields["constraint"] else None,
             f"in {fields['origin']}" if fields["origin"] else None]
    detail = ", ".join(p for p in parts if p)
    return f"{fields['db_error']} ({detail})" if detail else str(fields["db_error"])


def constraint_name(exc: DBAPIError) -> str:
    """The violated constraint's name. Citus passes a worker's error on with its message
    only (no fields), naming the shard's constraint (``uq_clinics_cnpj_102009``): the
    name is then read from the message, the shard's id taken off."""
    diag = getattr(exc.orig, "diag", None)
    name = str(getattr(diag, "constraint_name", "") or "")
    if name:
        return name
    found = _QUOTED_CONSTRAINT.search(str(getattr(diag, "message_primary", "") or ""))
    return _SHARD_SUFFIX.sub("", found.group(1)) if found else ""


def _column_name(orig: object) -> str:
    """The column of a NOT NULL violation (from the message where Citus passed no fields)."""
    diag = getattr(orig, "diag", None)
    name = str(getattr(diag, "column_name", "") or "")
    if not name:
        found = _QUOTED_COLUMN.search(str(getattr(diag, "message_primary", "") or ""))
        name = found.group(1) if found else ""
    return name


_QUOTED_CONSTRAINT = re.compile(r'constraint "([^"]+)"')
_QUOTED_COLUMN = re.compile(r'in column "([^"]+)"')
_SHARD_SUFFIX = re.compile(r"_\d{6,}$")  # Citus shard ids start at 102008


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
        if name in FK_FIELDS:
            return ValidationFailed(*FK_FIELDS[name])
        return NotFound(entity)
    if isinstance(orig, psycopg.errors.CheckViolation):
        field = name.removeprefix("ck_").split("_", 1)[-1] if name else "value"
        return ValidationFailed(field, "violates a data rule of the database")
    if isinstance(orig, psycopg.errors.NotNullViolation):
        return ValidationFailed(_column_name(orig) or "value", "is required")
    if isinstance(orig, psycopg.DataError):  # class 22: out of range, bad text, NUL bytes
        return ValidationFailed("value", "is not a value the database can store")
    if isinstance(orig, psycopg.errors.InsufficientPrivilege):
        return Forbidden("the database refused this operation for your clinic or role")
    log.debug("db_error_untranslated", sqlstate=sqlstate, constraint=name)
    return None

