"""Bulk import of patients from a CSV file: every row validated, then all or nothing.

Pass 1 reads the whole file: each row is validated with :class:`PatientCreate` and checked
for a CPF, CNS or record number used twice in the file or already in the clinic (one query
per import for the clinic's blind indexes and record numbers). Every problem is written to
a rejects file as ``line,field,reason``: never a value of the row.

Pass 2 loads the valid rows in one transaction of the clinic's unit of work, through its
:class:`~neonpro.domain.ports_import.PatientLoader` (in SQL: ``COPY`` into a staging
table, then ``INSERT ... SELECT`` under row-level security, in file order; see
``adapters/db/repositories/patient_import.py``). Any failure rolls the whole import back.

If any row is rejected nothing is loaded unless ``allow_partial`` is set; then the valid
rows are loaded, still in one transaction.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import structlog

from neonpro.domain.errors import DomainError
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.ports_import import ImportFailed, ImportRefused, ProgressFn
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel
from neonpro.services.patient_import_check import (
    BOOL_FIELDS,
    DATE_FIELDS,
    FIELDS,
    JSON_FIELDS,
    LIST_FIELDS,
    LIST_SEPARATOR,
    REJECTS_HEADER,
    ROW,
    UNIQUE_FIELDS,
    ImportResult,
    Rejection,
    _check_uniqueness,
    _columns,
    _Pass1,
    _reader,
    _validate,
    _write_rejects,
    default_rejects_path,
    existing_keys,
)

__all__ = [
    "BOOL_FIELDS", "DATE_FIELDS", "FIELDS", "JSON_FIELDS", "LIST_FIELDS",
    "LIST_SEPARATOR", "REJECTS_HEADER", "ROW", "UNIQUE_FIELDS",
    "ImportFailed", "ImportRefused", "ImportResult", "ProgressFn", "Rejection",
    "default_rejects_path", "existing_keys", "import_patients",
]

log = structlog.get_logger(__name__)


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
    uow: UnitOfWork,
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


def _load_and_commit(uow: UnitOfWork, columns: list[str], checked: _Pass1, source: Path,
                     report: ProgressFn) -> int:
    """Pass 2: load the valid rows, audit the import, commit; ImportFailed on any failure."""
    try:
        imported = uow.patient_import.load(columns, checked.rows, report)
        uow.audit.record(
            AuditAction.CREATE, AuditResource.PATIENT_IMPORT, risk=RiskLevel.MEDIUM,
            details={"imported": imported, "rejected": len(checked.rejected_lines),
                     "source": "csv", "sha256": _sha256(source)},
        )
        uow.commit()
    except ImportFailed:
        raise  # the load's own, without values
    except DomainError as exc:  # translated by the audit insert or the commit
        raise ImportFailed(
            f"the import was rolled back, nothing was loaded: {exc.message}"
        ) from None
    return imported


def _log_result(uow: UnitOfWork, result: ImportResult) -> None:
    log.info("patient_import", clinic_id=str(uow.clinic_id), read=result.read,
             valid=result.valid, rejected=result.rejected, imported=result.imported,
             seconds=round(result.seconds, 3))
