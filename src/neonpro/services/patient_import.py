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

import csv
import difflib
import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from enum import Enum
from pathlib import Path
from typing import IO, Any

import psycopg
import structlog
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from neonpro.adapters.db.errors import origin_of, translate
from neonpro.adapters.db.models import Professional
from neonpro.adapters.db.repositories import patient as patient_repo
from neonpro.adapters.db.uow import SqlUnitOfWork
from neonpro.domain.errors import DomainError, ValidationFailed
from neonpro.domain.schemas.patient import PatientCreate, PatientRead
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel

log = structlog.get_logger(__name__)

ProgressFn = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phases ``validate``, ``load`` and ``insert``."""

FIELDS: tuple[str, ...] = tuple(PatientCreate.model_fields)
_READ = PatientRead.model_fields
LIST_FIELDS = frozenset(f for f in FIELDS if _READ[f].annotation == list[str])
JSON_FIELDS = frozenset(f for f in FIELDS if _READ[f].annotation == dict[str, Any])
DATE_FIELDS = frozenset(f for f in FIELDS if _READ[f].annotation == (date | None))
BOOL_FIELDS = frozenset(f for f in FIELDS if _READ[f].annotation is bool)
UNIQUE_FIELDS = ("cpf", "cns", "medical_record_number")  # unique per clinic

LIST_SEPARATOR = ";"
REJECTS_HEADER = ("line", "field", "reason")
ROW = "row"  # the field name of problems of a whole row
STAGE = "neonpro_patient_import"  # the temporary staging table of COPY
STAGE_ORDINAL = "import_row"  # its row number: inserts go in file order, a chunk at a time
INSERT_CHUNK = 1000
_PROGRESS_EVERY = 250

_BR_DATE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")
_COLUMN_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_YES = frozenset({"sim", "s"})
_NO = frozenset({"não", "nao", "n"})
_MIN_ECHO = 3  # a reason never contains a cell's text of this length or more
_FIXED_REASONS = {
    "missing": "is required",
    "uuid_parsing": "is not a valid UUID",
    "uuid_type": "is not a valid UUID",
    "date_parsing": "is not a valid date (YYYY-MM-DD or DD/MM/YYYY)",
    "date_from_datetime_parsing": "is not a valid date (YYYY-MM-DD or DD/MM/YYYY)",
    "date_from_datetime_inexact": "is not a valid date (YYYY-MM-DD or DD/MM/YYYY)",
    "date_type": "is not a valid date (YYYY-MM-DD or DD/MM/YYYY)",
    "bool_parsing": "is not a yes/no value (true/false, sim/não, 1/0)",
    "bool_type": "is not a yes/no value (true/false, sim/não, 1/0)",
}


class ImportRefused(DomainError):
    """The file as a whole cannot be imported (missing, not UTF-8 CSV, unknown columns)."""

    code = "import_refused"


class ImportFailed(DomainError):
    """The load failed; the transaction rolled back and nothing was imported."""

    code = "import_failed"


@dataclass(frozen=True, slots=True)
class Rejection:
    """One problem of one row: the line in the file (the header is line 1), never a value."""

    line: int
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did. ``ok``: nothing rejected, or a partial load that loaded rows."""

    source: Path
    rejects_path: Path
    read: int
    valid: int
    rejected: int
    imported: int
    allow_partial: bool
    seconds: float
    rejections: tuple[Rejection, ...] = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.rejected == 0 or (self.allow_partial and self.imported > 0)

    def to_json(self) -> dict[str, Any]:
        return {
            "file": str(self.source), "rejects_file": str(self.rejects_path),
            "read": self.read, "valid": self.valid, "rejected": self.rejected,
            "imported": self.imported, "allow_partial": self.allow_partial, "ok": self.ok,
            "seconds": round(self.seconds, 3),
        }


def default_rejects_path(source: Path) -> Path:
    """``patients.csv`` -> ``patients.rejects.csv`` (next to the file)."""
    return source.with_suffix(".rejects.csv")


# ------------------------------------------------------------------------- the file


def _open(path: Path) -> IO[str]:
    try:
        return path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise ImportRefused(f"{path} does not exist") from None
    except IsADirectoryError:
        raise ImportRefused(f"{path} is a directory, not a CSV file") from None
    except OSError as exc:
        raise ImportRefused(f"cannot read {path}: {exc.strerror}") from None


def _first_undecodable_line(path: Path) -> int:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0  # pragma: no cover - the text reader failed, so some line does


def _guarded(reader: Any, path: Path) -> Iterator[list[str]]:
    """The reader's records; a decoding or CSV syntax error refuses the whole file."""
    while True:
        start = reader.line_num + 1  # where the next record begins
        try:
            record = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError:
            raise ImportRefused(
                f"{path.name} is not UTF-8 text (line {_first_undecodable_line(path)}): "
                "save it as CSV UTF-8"
            ) from None
        except csv.Error as exc:  # fixed texts ("unexpected end of data"), never a cell
            raise ImportRefused(f"{path.name} is not valid CSV at line {start}: {exc}") from None
        yield record


@contextmanager
def _reader(path: Path) -> Iterator[tuple[list[str], Iterator[tuple[int, list[str]]]]]:
    """The header and the non-blank records with the line each starts on (header = 1)."""
    with _open(path) as handle:
        reader = csv.reader(handle, strict=True)
        records = _guarded(reader, path)
        header = next(records, None)
        if header is None or not any(cell.strip() for cell in header):
            raise ImportRefused(f"{path.name} is empty: the first line must be the header")

        def rows() -> Iterator[tuple[int, list[str]]]:
            line = reader.line_num
            for cells in records:  # a quoted cell may span lines: a record starts after
                start, line = line + 1, reader.line_num  # the end of the previous one
                if any(cell.strip() for cell in cells):
                    yield start, cells

        yield header, rows()


def _columns(header: list[str], name: str) -> list[str]:
    """The field of each column, or ImportRefused naming what is wrong with the header."""
    columns = [cell.strip().lower() for cell in header]
    known = [c for c in columns if c in FIELDS]
    if not known:
        hint = (" (it looks separated by semicolons: use commas)"
                if len(header) == 1 and ";" in header[0] else "")
        raise ImportRefused(
            f"the first line of {name} is not a header of patient fields{hint}: expected "
            "column names such as full_name, cpf, birth_date (see docs/import.md)"
        )
    problems: list[str] = []
    for number, column in enumerate(columns, 1):
        if column in FIELDS:
            continue
        if not column:
            problems.append(f"column {number} has no name")
        elif _COLUMN_NAME.fullmatch(column):  # a name, not data of a headerless file
            close = difflib.get_close_matches(column, FIELDS, n=1)
            problems.append(f"{column!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        else:
            problems.append(f"column {number}")
    if problems:
        raise ImportRefused(
            f"unknown column(s) in {name}: {', '.join(problems)}; nothing was imported "
            "(the accepted columns are the patient fields listed in docs/import.md)"
        )
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ImportRefused(f"column(s) {', '.join(twice)} appear more than once in {name}")
    if "full_name" not in columns:
        raise ImportRefused(f"{name} has no full_name column (it is required)")
    return columns


# ------------------------------------------------------------------------- pass 1


class _CellError(ValidationFailed):
    """One cell of the file is invalid: its line is rejected, naming the column (never
    raised out of the import)."""

    def __init__(self, reason: str) -> None:
        super().__init__("cell", reason)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise _CellError('must be a JSON object such as {"sistema": "id"}')
    return value


def _cell(name: str, raw: str) -> Any:
    """The cell as PatientCreate takes it; None when empty (the field is absent)."""
    text = raw.strip()
    value: Any = text or None
    if value is None:
        pass
    elif name in LIST_FIELDS:
        value = [item for item in (i.strip() for i in text.split(LIST_SEPARATOR)) if item]
        value = value or None
    elif name in JSON_FIELDS:
        value = _json_object(text)
    elif name in DATE_FIELDS and (match := _BR_DATE.fullmatch(text)):
        day, month, year = match.groups()
        value = f"{year}-{int(month):02d}-{int(day):02d}"
    elif name in BOOL_FIELDS and text.lower() in _YES | _NO:
        value = text.lower() in _YES
    return value


def _reason(error: ErrorDetails, cells: list[str]) -> str:
    reason = _FIXED_REASONS.get(error["type"])
    if reason is None:
        reason = error["msg"].removeprefix("Value error, ")
        # defence in depth: the schemas never echo input, and neither does this file
        if any(len(c.strip()) >= _MIN_ECHO and c.strip() in reason for c in cells):
            reason = "is not valid"
    return reason


@dataclass(slots=True)
class _Pass1:
    read: int = 0
    rows: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    rejected_lines: set[int] = field(default_factory=set)

    def reject(self, line: int, field_name: str, reason: str) -> None:
        self.rejections.append(Rejection(line, field_name, reason))
        self.rejected_lines.add(line)


def _validate(
    records: Iterator[tuple[int, list[str]]], columns: list[str], result: _Pass1,
    progress: ProgressFn, total: int,
) -> None:
    """Every row through PatientCreate; the valid ones kept as the repository's fields."""
    width = len(columns)
    for line, cells in records:
        result.read += 1
        if result.read % _PROGRESS_EVERY == 0:
            progress("validate", result.read, total)
        if len(cells) != width:
            result.reject(line, ROW, f"has {len(cells)} values, the header has {width} columns")
            continue
        data: dict[str, Any] = {}
        bad_cells = False
        for name, raw in zip(columns, cells, strict=True):
            try:
                value = _cell(name, raw)
            except _CellError as exc:
                result.reject(line, name, exc.reason)
                bad_cells = True
                continue
            if value is not None:
                data[name] = value
        try:
            patient = PatientCreate.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False):
                where = ".".join(str(part) for part in error["loc"]) or ROW
                result.reject(line, where, _reason(error, cells))
            continue
        if not bad_cells:
            result.rows.append((line, patient.model_dump(exclude_none=True, mode="python")))
    progress("validate", result.read, total)


@dataclass(frozen=True, slots=True)
class _Existing:
    """What the clinic already holds of the unique keys (blind indexes, record numbers)."""

    cpf: frozenset[bytes] = frozenset()
    cns: frozenset[bytes] = frozenset()
    medical_record_number: frozenset[str] = frozenset()
    professionals: frozenset[uuid.UUID] | None = None  # None: no such column in the file


def existing_keys(uow: SqlUnitOfWork, columns: list[str]) -> _Existing:
    """One query for the clinic's CPF/CNS blind indexes and record numbers (deleted rows
    too: the unique constraints cover them), one for its professionals if needed."""
    t = patient_repo.T
    wanted = {"cpf": t.cpf_blind_index, "cns": t.cns_blind_index,
              "medical_record_number": t.medical_record_number}
    selected = [name for name in wanted if name in columns]
    sets: dict[str, set[Any]] = {name: set() for name in selected}
    if selected:
        query = select(*(wanted[n] for n in selected)).where(t.clinic_id == uow.clinic_id)
        for row in uow.connection.execute(query):
            for name, value in zip(selected, row, strict=True):
                if value is not None:
                    sets[name].add(bytes(value) if isinstance(value, memoryview) else value)
    professionals = None
    if "primary_professional_id" in columns:
        p = Professional.__table__.c
        professionals = frozenset[uuid.UUID](uow.connection.execute(
            select(p.id).where(p.clinic_id == uow.clinic_id)).scalars())
    return _Existing(
        cpf=frozenset(sets.get("cpf", ())), cns=frozenset(sets.get("cns", ())),
        medical_record_number=frozenset(sets.get("medical_record_number", ())),
        professionals=professionals,
    )


def _check_duplicates(result: _Pass1) -> None:
    """Every line of a CPF, CNS or record number used on two lines or more is rejected:
    which of them is the right one is for the clinic to say."""
    seen: dict[tuple[str, str], list[int]] = {}
    for line, fields in result.rows:
        for name in UNIQUE_FIELDS:
            value = fields.get(name)
            if value is not None:
                seen.setdefault((name, value), []).append(line)
    for (name, _value), lines in seen.items():
        if len(lines) > 1:
            for line in lines:
                others = ", ".join(str(n) for n in lines if n != line)
                result.reject(line, name, f"the same {name} is on line(s) {others}")


def _check_existing(uow: SqlUnitOfWork, result: _Pass1, existing: _Existing) -> None:
    """Reject keys the clinic already holds (compared by blind index), unknown professionals."""
    blind = uow.blind
    held = {"cpf": existing.cpf, "cns": existing.cns}
    for line, fields in result.rows:
        for name, indexes in held.items():
            value = fields.get(name)
            if value is not None and blind.index(name, value) in indexes:
                result.reject(line, name, f"a patient of this clinic already has this {name}")
        mrn = fields.get("medical_record_number")
        if mrn is not None and mrn in existing.medical_record_number:
            result.reject(line, "medical_record_number",
                          "a patient of this clinic already has this medical_record_number")
        professional = fields.get("primary_professional_id")
        if (professional is not None and existing.professionals is not None
                and professional not in existing.professionals):
            result.reject(line, "primary_professional_id", "no such professional in this clinic")


def _check_uniqueness(uow: SqlUnitOfWork, result: _Pass1, existing: _Existing) -> None:
    _check_duplicates(result)
    _check_existing(uow, result, existing)
    result.rows = [(n, f) for n, f in result.rows if n not in result.rejected_lines]


def _write_rejects(path: Path, rejections: list[Rejection]) -> None:
    """The rejects file, replaced atomically (written even when empty: always current).

    Mode 0600 like any file made by ``mkstemp``: it holds no personal data, but it is
    about a clinic's patients."""
    directory = path.parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise ImportRefused(f"cannot write the rejects file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(REJECTS_HEADER)
            writer.writerows((r.line, r.field, r.reason) for r in rejections)
        Path(temporary).replace(path)
    except OSError as exc:
        with suppress(OSError):
            Path(temporary).unlink()
        raise ImportRefused(f"cannot write the rejects file {path}: {exc.strerror}") from None


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
    absent = [(c, _absent(c)) for c in copy_columns]
    names = sql.SQL(", ").join(sql.Identifier(c) for c in copy_columns)
    table = sql.Identifier(patient_repo.NAME)
    stage = sql.Identifier("pg_temp", STAGE)
    ordinal = sql.Identifier(STAGE_ORDINAL)
    repo = uow.patients
    actor = uow.actor.id
    clinic = uow.clinic_id
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
        progress("load", total, total)
        cursor.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(stage, ordinal))
        insert = sql.SQL(
            "INSERT INTO {} ({}) SELECT {} FROM {} WHERE {} > %s AND {} <= %s ORDER BY {}"
        ).format(table, names, names, stage, ordinal, ordinal, ordinal)
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
    result = ImportResult(
        source=source, rejects_path=rejects, read=checked.read, valid=len(checked.rows),
        rejected=len(checked.rejected_lines), imported=imported, allow_partial=allow_partial,
        seconds=time.perf_counter() - started, rejections=tuple(rejections),
    )
    log.info("patient_import", clinic_id=str(uow.clinic_id), read=result.read,
             valid=result.valid, rejected=result.rejected, imported=result.imported,
             seconds=round(result.seconds, 3))
    return result
