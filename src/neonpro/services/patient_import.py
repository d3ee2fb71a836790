"""Bulk import of patients from a CSV file: every row validated, then all or nothing.

Pass 1 reads the whole file: each row is validated with :class:`PatientCreate` and checked
for a CPF, CNS or record number used twice in the file or already in the clinic (one query
per import for the clinic's blind indexes and record numbers). Every problem is written to
a rejects file as ``line,field,reason``: never a value of the row.

Pass 2 loads the valid rows in one transaction of the clinic's unit of work. Rows are
built by the patient repository's own mapping (encryption with table/column/row id as
associated data, CPF/CNS blind indexes, a generated record number) and streamed with
``COPY`` into a temporary staging table, then moved into ``patients`` by
``INSERT ... SELECT`` (in chunks, in file order). PostgreSQL refuses ``COPY FROM``
into a table whose row-level security applies to the caller (``patients`` forces it for
the application role), and the ``INSERT`` keeps what matters: the tenant policy checks
every row, constraints and the audit trigger (one event per patient) run as for any
insert. Any failure rolls the whole import back.

If any row is rejected nothing is loaded unless ``allow_partial`` is set; then the valid
rows are loaded, still in one transaction.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.exc import DBAPIError

from neonpro.adapters.db.errors import origin_of, translate
from neonpro.adapters.db.repositories import patient as patient_repo
from neonpro.adapters.db.uow import SqlUnitOfWork
from neonpro.domain.errors import DomainError
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel
from neonpro.services.patient_import_check import (
    _PROGRESS_EVERY,
    BOOL_FIELDS,
    DATE_FIELDS,
    FIELDS,
    JSON_FIELDS,
    LIST_FIELDS,
    LIST_SEPARATOR,
    REJECTS_HEADER,
    ROW,
    UNIQUE_FIELDS,
    ImportFailed,
    ImportRefused,
    ImportResult,
    ProgressFn,
    Rejection,
    _check_uniqueness,
    _columns,
    _Existing,  # noqa: F401  (patient_import._Existing: tests stub existing_keys with it)
    _Pass1,
    _reader,
    _validate,
    _write_rejects,
    default_rejects_path,
    existing_keys,
)

__all__ = [
    "BOOL_FIELDS", "DATE_FIELDS", "FIELDS", "INSERT_CHUNK", "JSON_FIELDS", "LIST_FIELDS",
    "LIST_SEPARATOR", "REJECTS_HEADER", "ROW", "STAGE", "STAGE_ORDINAL", "UNIQUE_FIELDS",
    "ImportFailed", "ImportRefused", "ImportResult", "ProgressFn", "Rejection",
    "default_rejects_path", "existing_keys", "import_patients",
]

log = structlog.get_logger(__name__)

STAGE = "neonpro_patient_import"  # the temporary staging table of COPY
STAGE_ORDINAL = "import_row"  # its row number: inserts go in file order, a chunk at a time
INSERT_CHUNK = 1000


# ------------------------------------------------------------------------- pass 2


def _copy_columns(columns: list[str]) -> list[str]:
    """The table columns an import writes: what the header can fill, plus the row's ids."""
    out = ["id", "clinic_id", "medical_record_number", "created_by", "updated_by"]
    for name in columns:
        column = patient_repo.ENCRYPTED.get(name, name)
        if column not in out:
            out.append(column)
        if name in patient_repo.BLIND:
            out.append(patient_repo.BLIND[name])
    return out


def _absent(name: str) -> Callable[[], Any]:
    """What the repository's INSERT writes into a column for a row without a value: the
    column's default (``nationality`` 'brasileira', ``allergies`` [], ...) or NULL."""
    column = patient_repo.TABLE.c[name]
    default: Any = column.default
    if default is None:
        if column.server_default is not None:  # pragma: no cover - schema guard
            raise RuntimeError(f"patients.{name}: a server default needs a client default")
        return lambda: None
    if default.is_scalar:
        return lambda: default.arg
    return lambda: default.arg(None)  # SQLAlchemy's wrapper of list, dict, ...


def _adapt(value: Any) -> Any:
    """A Python value as COPY takes it (enums by value, JSON objects as jsonb)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return Jsonb(value)
    return value


def _load(
    uow: SqlUnitOfWork, columns: list[str], rows: list[tuple[int, dict[str, Any]]],
    progress: ProgressFn,
) -> int:
    """COPY the rows into a staging table, then INSERT them into patients in file order,
    a chunk at a time (the insert is where the time goes: the progress bar follows it).
    Returns the number of rows inserted."""
    copy_columns = _copy_columns(columns)
    names = sql.SQL(", ").join(sql.Identifier(c) for c in copy_columns)
    table = sql.Identifier(patient_repo.NAME)
    stage = sql.Identifier("pg_temp", STAGE)
    ordinal = sql.Identifier(STAGE_ORDINAL)
    total = len(rows)
    raw = uow.connection.connection.driver_connection
    if not isinstance(raw, psycopg.Connection):  # pragma: no cover - the only driver
        raise TypeError("the patient import needs the psycopg driver")
    with raw.cursor() as cursor:
        cursor.execute(sql.SQL(
            "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {}, 0 AS {} FROM {} WITH NO DATA"
        ).format(sql.Identifier(STAGE), names, ordinal, table))
        copy_sql = sql.SQL("COPY {} ({}, {}) FROM STDIN").format(stage, names, ordinal)
        with cursor.copy(copy_sql) as copy:
            _copy_rows(uow, copy, copy_columns, rows, progress)
        progress("load", total, total)
        cursor.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(stage, ordinal))
        insert = sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM {} WHERE {} > %s AND {} <= %s ORDER BY {}"
        ).format(table, names, names, stage, ordinal, ordinal, ordinal)
        return _insert_chunks(cursor, insert, total, progress)


def _copy_rows(uow: SqlUnitOfWork, copy: psycopg.Copy, copy_columns: list[str],
               rows: list[tuple[int, dict[str, Any]]], progress: ProgressFn) -> None:
    """Write each row as the repository would insert it, numbered in file order."""
    absent = [(c, _absent(c)) for c in copy_columns]
    repo = uow.patients
    actor = uow.actor.id
    clinic = uow.clinic_id
    total = len(rows)
    for done, (_line, fields) in enumerate(rows, 1):
        patient_id = uuid.uuid4()
        values = dict(fields)
        values.setdefault("medical_record_number", patient_repo._mrn(patient_id))  # noqa: SLF001
        # the repository's own mapping: encryption (AAD = table, column, row id)
        # and blind indexes exactly as SqlPatientRepository.add writes them
        row = repo._to_row(patient_id, values)  # noqa: SLF001
        row.update(id=patient_id, clinic_id=clinic, created_by=actor, updated_by=actor)
        copy.write_row([
            *(_adapt(row[c] if c in row else make()) for c, make in absent), done
        ])
        if done % _PROGRESS_EVERY == 0:
            progress("load", done, total)


def _insert_chunks(cursor: psycopg.Cursor[Any], insert: sql.Composed, total: int,
                   progress: ProgressFn) -> int:
    """INSERT the staged rows ``INSERT_CHUNK`` at a time; the number inserted."""
    inserted = 0
    progress("insert", 0, total)
    for first in range(0, total, INSERT_CHUNK):
        cursor.execute(insert, (first, first + INSERT_CHUNK))
        inserted += cursor.rowcount
        progress("insert", inserted, total)
    return inserted


def _failure(exc: psycopg.Error, uow: SqlUnitOfWork) -> ImportFailed:
    """A database error as a message without values (the driver's text carries them)."""
    wrapped = DBAPIError(None, None, exc)
    error = translate(wrapped)
    diag = getattr(exc, "diag", None)
    log.warning("patient_import_db_error", sqlstate=exc.sqlstate,
                constraint=getattr(diag, "constraint_name", None), origin=origin_of(exc),
                clinic_id=str(uow.clinic_id), actor_id=str(uow.actor.id))
    if isinstance(exc, psycopg.errors.InsufficientPrivilege) and error is not None:
        detail = (f"{error.message} (the import stages rows in a temporary table: the "
                  "application role needs the TEMPORARY privilege on the database)")
    elif error is not None:
        detail = error.message
    else:
        detail = f"database error {exc.sqlstate or type(exc).__name__}"
    return ImportFailed(f"the import was rolled back, nothing was loaded: {detail}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ------------------------------------------------------------------------- the use case


def _no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


def _count_records(path: Path) -> tuple[list[str], int]:
    with _reader(path) as (header, records):
        return header, sum(1 for _ in records)


def import_patients(
    uow: SqlUnitOfWork,
    source: Path,
    *,
    rejects_path: Path | None = None,
    allow_partial: bool = False,
    progress: ProgressFn | None = None,
) -> ImportResult:
    """Import the patients of a CSV file into the unit of work's clinic, all or nothing.

    Raises :class:`ImportRefused` for a file that cannot be read as a whole (nothing is
    written then, not even the rejects file) and :class:`ImportFailed` when the load
    fails (rolled back). Rejected rows are in ``rejects_path`` (default
    ``<file>.rejects.csv``).
    """
    started = time.perf_counter()
    report = progress or _no_progress
    rejects = rejects_path or default_rejects_path(source)
    if rejects.resolve() == source.resolve():
        raise ImportRefused("the rejects file must not be the file being imported")
    header, total = _count_records(source)  # also: readable, UTF-8, well-formed CSV
    columns = _columns(header, source.name)
    checked = _Pass1()
    imported = 0
    with uow:
        uow.clinics.get()  # NotFound for an unknown clinic, before any work
        existing = existing_keys(uow, columns)
        with _reader(source) as (_header, records):
            _validate(records, columns, checked, report, total)
        _check_uniqueness(uow, checked, existing)
        rejections = sorted(checked.rejections, key=lambda r: r.line)
        _write_rejects(rejects, rejections)
        load = bool(checked.rows) and (allow_partial or not rejections)
        if load:
            imported = _load_and_commit(uow, columns, checked, source, report)
    result = ImportResult(
        source=source, rejects_path=rejects, read=checked.read, valid=len(checked.rows),
        rejected=len(checked.rejected_lines), imported=imported, allow_partial=allow_partial,
        seconds=time.perf_counter() - started, rejections=tuple(rejections),
    )
    _log_result(uow, result)
    return result


def _load_and_commit(uow: SqlUnitOfWork, columns: list[str], checked: _Pass1, source: Path,
                     report: ProgressFn) -> int:
    """Pass 2: load the valid rows, audit the import, commit; ImportFailed on any failure."""
    try:
        imported = _load(uow, columns, checked.rows, report)
        uow.audit.record(
            AuditAction.CREATE, AuditResource.PATIENT_IMPORT, risk=RiskLevel.MEDIUM,
            details={"imported": imported, "rejected": len(checked.rejected_lines),
                     "source": "csv", "sha256": _sha256(source)},
        )
        uow.commit()
    except psycopg.Error as exc:
        raise _failure(exc, uow) from None
    except DomainError as exc:  # translated by the audit insert or the commit
        raise ImportFailed(
            f"the import was rolled back, nothing was loaded: {exc.message}"
        ) from None
    return imported


def _log_result(uow: SqlUnitOfWork, result: ImportResult) -> None:
    log.info("patient_import", clinic_id=str(uow.clinic_id), read=result.read,
             valid=result.valid, rejected=result.rejected, imported=result.imported,
             seconds=round(result.seconds, 3))
