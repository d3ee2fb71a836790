"""Pass 1 of the patient import (see :mod:`neonpro.services.patient_import`): reading
the CSV file, validating every row, checking uniqueness in the file and the clinic, and
writing the rejects file. Also the import's errors and results."""

from __future__ import annotations

import csv
import difflib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from neonpro.domain.errors import ValidationFailed
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.ports_import import (
    ExistingKeys,
    ImportRefused,
    ProgressFn,
)
from neonpro.domain.schemas.patient import PatientCreate, PatientRead

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


def existing_keys(uow: UnitOfWork, columns: list[str]) -> ExistingKeys:
    """What the clinic already holds of the unique keys the file's columns name (one query,
    one more for its professionals if needed)."""
    return uow.patient_import.existing_keys(columns)


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


def _check_existing(uow: UnitOfWork, result: _Pass1, existing: ExistingKeys) -> None:
    """Reject keys the clinic already holds (compared by blind index), unknown professionals."""
    loader = uow.patient_import
    held = {"cpf": existing.cpf, "cns": existing.cns}
    for line, fields in result.rows:
        for name, indexes in held.items():
            value = fields.get(name)
            if value is not None and loader.blind_index(name, value) in indexes:
                result.reject(line, name, f"a patient of this clinic already has this {name}")
        mrn = fields.get("medical_record_number")
        if mrn is not None and mrn in existing.medical_record_number:
            result.reject(line, "medical_record_number",
                          "a patient of this clinic already has this medical_record_number")
        professional = fields.get("primary_professional_id")
        if (professional is not None and existing.professionals is not None
                and professional not in existing.professionals):
            result.reject(line, "primary_professional_id", "no such professional in this clinic")


def _check_uniqueness(uow: UnitOfWork, result: _Pass1, existing: ExistingKeys) -> None:
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
