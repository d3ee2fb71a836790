"""The patient import's bulk load in SQL (:class:`~neonpro.domain.ports_import.PatientLoader`).

Rows are built by the patient repository's own mapping (encryption with table/column/row
id as associated data, CPF/CNS blind indexes, a generated record number) and streamed with
``COPY`` into a temporary staging table, then moved into ``patients`` by
``INSERT ... SELECT`` (in chunks, in file order). PostgreSQL refuses ``COPY FROM`` into a
table whose row-level security applies to the caller (``patients`` forces it for the
application role), and the ``INSERT`` keeps what matters: the tenant policy checks every
row, constraints and the audit trigger (one event per patient) run as for any insert.

Raw psycopg, on the unit of work's own connection: SQLAlchemy has no ``COPY FROM STDIN``,
and the staging table is temporary, so it must be the same session as the ``INSERT``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import psycopg
import structlog
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from neonpro.adapters.db.errors import origin_of, translate
from neonpro.adapters.db.models import Professional
from neonpro.adapters.db.repositories import patient as patient_repo
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.ports_import import CheckedRow, ExistingKeys, ImportFailed, ProgressFn

log = structlog.get_logger(__name__)

STAGE = "neonpro_patient_import"  # the temporary staging table of COPY
STAGE_ORDINAL = "import_row"  # its row number: inserts go in file order, a chunk at a time
INSERT_CHUNK = 1000
PROGRESS_EVERY = 250


def _copy_columns(columns: Sequence[str]) -> list[str]:
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


class SqlPatientLoader(SqlRepository):
    __slots__ = ()

    def existing_keys(self, columns: Sequence[str]) -> ExistingKeys:
        """One query for the clinic's CPF/CNS blind indexes and record numbers, one for its
        professionals if needed."""
        t = patient_repo.T
        wanted = {"cpf": t.cpf_blind_index, "cns": t.cns_blind_index,
                  "medical_record_number": t.medical_record_number}
        selected = [name for name in wanted if name in columns]
        sets: dict[str, set[Any]] = {name: set() for name in selected}
        if selected:
            query = select(*(wanted[n] for n in selected)).where(t.clinic_id == self.clinic_id)
            for row in self._execute(query):
                for name, value in zip(selected, row, strict=True):
                    if value is not None:
                        sets[name].add(bytes(value) if isinstance(value, memoryview) else value)
        professionals = None
        if "primary_professional_id" in columns:
            p = Professional.__table__.c
            professionals = frozenset[uuid.UUID](self._execute(
                select(p.id).where(p.clinic_id == self.clinic_id)).scalars())
        return ExistingKeys(
            cpf=frozenset(sets.get("cpf", ())), cns=frozenset(sets.get("cns", ())),
            medical_record_number=frozenset(sets.get("medical_record_number", ())),
            professionals=professionals,
        )

    def blind_index(self, kind: str, value: str) -> bytes:
        return self._uow.blind.index(kind, value)

    def load(self, columns: Sequence[str], rows: Sequence[CheckedRow],
             progress: ProgressFn) -> int:
        try:
            return self._load(columns, rows, progress)
        except psycopg.Error as exc:
            raise self._failure(exc) from None

    def _load(self, columns: Sequence[str], rows: Sequence[CheckedRow],
              progress: ProgressFn) -> int:
        """COPY the rows into a staging table, then INSERT them into patients in file
        order, a chunk at a time (the insert is where the time goes: the progress bar
        follows it). Returns the number of rows inserted."""
        copy_columns = _copy_columns(columns)
        names = sql.SQL(", ").join(sql.Identifier(c) for c in copy_columns)
        table = sql.Identifier(patient_repo.NAME)
        stage = sql.Identifier("pg_temp", STAGE)
        ordinal = sql.Identifier(STAGE_ORDINAL)
        total = len(rows)
        raw = self._uow.connection.connection.driver_connection
        if not isinstance(raw, psycopg.Connection):  # pragma: no cover - the only driver
            raise TypeError("the patient import needs the psycopg driver")
        with raw.cursor() as cursor:
            cursor.execute(sql.SQL(
                "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {}, 0 AS {} FROM {} "
                "WITH NO DATA").format(sql.Identifier(STAGE), names, ordinal, table))
            copy_sql = sql.SQL("COPY {} ({}, {}) FROM STDIN").format(stage, names, ordinal)
            with cursor.copy(copy_sql) as copy:
                self._copy_rows(copy, copy_columns, rows, progress)
            progress("load", total, total)
            cursor.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                stage, ordinal))
            insert = sql.SQL(
                "INSERT INTO {} ({}) SELECT {} FROM {} WHERE {} > %s AND {} <= %s ORDER BY {}"
            ).format(table, names, names, stage, ordinal, ordinal, ordinal)
            return _insert_chunks(cursor, insert, total, progress)

    def _copy_rows(self, copy: psycopg.Copy, copy_columns: list[str],
                   rows: Sequence[CheckedRow], progress: ProgressFn) -> None:
        """Write each row as the repository would insert it, numbered in file order."""
        absent = [(c, _absent(c)) for c in copy_columns]
        repo = self._uow.patients
        actor = self._uow.actor.id
        clinic = self.clinic_id
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
            if done % PROGRESS_EVERY == 0:
                progress("load", done, total)

    def _failure(self, exc: psycopg.Error) -> ImportFailed:
        """A database error as a message without values (the driver's text carries them)."""
        error = translate(DBAPIError(None, None, exc))
        diag = getattr(exc, "diag", None)
        log.warning("patient_import_db_error", sqlstate=exc.sqlstate,
                    constraint=getattr(diag, "constraint_name", None), origin=origin_of(exc),
                    clinic_id=str(self._uow.clinic_id), actor_id=str(self._uow.actor.id))
        if isinstance(exc, psycopg.errors.InsufficientPrivilege) and error is not None:
            detail = (f"{error.message} (the import stages rows in a temporary table: the "
                      "application role needs the TEMPORARY privilege on the database)")
        elif error is not None:
            detail = error.message
        else:
            detail = f"database error {exc.sqlstate or type(exc).__name__}"
        return ImportFailed(f"the import was rolled back, nothing was loaded: {detail}")


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
