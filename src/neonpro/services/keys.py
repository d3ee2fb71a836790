"""Encryption key upkeep: where values stand per key id, rotation, blind-index re-keying.

``key_status`` counts, in SQL, the values of every encrypted column under each key id
(the id is in the value's header: ``substring(col from 3 for get_byte(col, 1))``).

``rotate`` re-encrypts every value not under the active key with the active key, table by
table in short batches (one transaction each) while the application keeps running:

* rows are read in primary-key order (``clinic_id, id``) with the service role, across
  clinics; each value is decrypted with its own key and encrypted with the active key
  under the same associated data (table, column, row id);
* each value is written only if the column still holds the ciphertext that was read
  (``CASE WHEN col = :old``), so a staff edit made meanwhile wins and is never overwritten;
  ``version`` is not touched, so no staff edit fails with a stale version because of it;
* re-running continues with what remains, since rows are picked by key id: an interrupted
  rotation is resumed by running it again.

The row-change trigger records one ``UPDATE`` audit event per rewritten row (naming the
changed columns); ``rotate`` adds one ``KEY_ROTATION`` summary event per column to the
system chain. Old keys keep decrypting throughout; a key can leave the key ring once
``key_status`` shows no value under it.

``reindex_blind`` recomputes the CPF and CNS blind indexes with a new blind-index key
(a separate, explicit maintenance operation: a row already re-indexed is not found by
processes still using the old key). The per-clinic unique constraints re-check
uniqueness; a row whose new index collides with another is reported, not changed.

Nothing here ever logs, prints or raises with a plaintext value or key material.
"""

from __future__ import annotations

import re
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import structlog
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from neonpro.adapters.crypto import (
    BLOB_VERSION,
    BlindIndexer,
    DecryptionError,
    FieldCipher,
    KeyRing,
    promote_blind_index_key,
    remove_key_from_file,
)
from neonpro.adapters.db.errors import constraint_name
from neonpro.adapters.db.repositories import appointment as appointment_repo
from neonpro.adapters.db.repositories import patient as patient_repo
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.errors import OperationFailed
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel

if TYPE_CHECKING:
    from neonpro.bootstrap import Container

log = structlog.get_logger(__name__)

ACTOR: Final = SystemActors.CLI
DEFAULT_BATCH: Final = 500
MAX_BATCH: Final = 10_000
MALFORMED: Final = "<malformed>"
AUDIT_RESOURCE: Final = AuditResource.ENCRYPTION_KEYS
# a full-table count or a keyset scan that finds few rows to rotate may take a while on a
# big table; the batches themselves stay short
SCAN_TIMEOUT: Final = "10min"
REINDEX_PASSES: Final = 3

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class KeyRotationError(OperationFailed):
    """Rotation or re-indexing cannot go on; names table, column and key id, never a value."""


@dataclass(frozen=True)
class EncryptedColumn:
    table: str
    column: str

    def __post_init__(self) -> None:
        if not (_IDENT.fullmatch(self.table) and _IDENT.fullmatch(self.column)):
            raise ValueError("table and column must be plain lower-case identifiers")

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


COLUMNS: Final[tuple[EncryptedColumn, ...]] = tuple(
    EncryptedColumn(patient_repo.NAME, column) for column in patient_repo.ENCRYPTED.values()
) + tuple(
    EncryptedColumn(appointment_repo.NAME, column)
    for column in appointment_repo.ENCRYPTED.values()
)

# blind-index kind -> (ciphertext column, index column) of patients
BLIND_COLUMNS: Final[dict[str, tuple[str, str]]] = {
    kind: (patient_repo.ENCRYPTED[kind], index) for kind, index in patient_repo.BLIND.items()
}


def _by_table(columns: Sequence[EncryptedColumn]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for c in columns:
        if c.column not in out[c.table]:
            out[c.table].append(c.column)
    return dict(out)


def _header(key_id: str) -> bytes:
    kid = key_id.encode("ascii")
    return bytes((BLOB_VERSION, len(kid))) + kid


def _show_key_id(raw: bytes | None) -> str:
    if raw is None:
        return MALFORMED
    try:
        kid = bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        return MALFORMED
    return kid if _KEY_ID.fullmatch(kid) else MALFORMED


def _key_id_of(blob: bytes) -> str:
    blob = bytes(blob)
    if len(blob) < 2 or blob[0] != BLOB_VERSION:  # noqa: PLR2004
        return MALFORMED
    return _show_key_id(blob[2 : 2 + blob[1]])


@contextmanager
def _transaction(container: Container, actor: Actor) -> Iterator[Connection]:
    """One short service-role transaction (``app.actor_id`` set for the audit triggers)."""
    with container.service_uow(actor) as tx:
        conn = tx.connection
        conn.execute(text("SELECT set_config('statement_timeout', :t, true)"),
                     {"t": SCAN_TIMEOUT})
        yield conn
        tx.commit()


def _record(container: Container, actor: Actor, resource_id: str,
            details: dict[str, Any]) -> None:
    """A ``KEY_ROTATION`` event on the system chain (ints and strings in ``details``).

    Called from ``finally`` blocks: when another error is already on its way out, a
    failure here is logged rather than raised, so it does not hide that error.
    """
    unwinding = sys.exc_info()[1] is not None
    try:
        with container.service_uow(actor) as tx:
            tx.audit.record(AuditAction.KEY_ROTATION, AUDIT_RESOURCE, resource_id,
                            risk=RiskLevel.MEDIUM, details=details)
            tx.commit()
    except Exception as exc:
        if not unwinding:
            raise
        log.warning("key_rotation_audit_failed", resource=resource_id,
                    error=type(exc).__name__)


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class ColumnStatus:
    table: str
    column: str
    by_key: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_key.values())


@dataclass(frozen=True)
class KeyStatus:
    """How many values of each encrypted column are under each key id."""

    active_key_id: str
    key_ids: tuple[str, ...]  # the ids this process's key ring holds
    columns: tuple[ColumnStatus, ...]

    @property
    def by_key(self) -> dict[str, int]:
        """Values per key id over every column; every key of the ring appears (maybe 0)."""
        totals = dict.fromkeys(self.key_ids, 0)
        for c in self.columns:
            for kid, n in c.by_key.items():
                totals[kid] = totals.get(kid, 0) + n
        return dict(sorted(totals.items()))

    @property
    def total(self) -> int:
        return sum(c.total for c in self.columns)

    @property
    def remaining(self) -> int:
        """Values not yet under the active key."""
        return sum(n for kid, n in self.by_key.items() if kid != self.active_key_id)

    @property
    def unknown(self) -> list[tuple[str, str, str]]:
        """(table, column, key id) for values under a key id this key ring does not hold."""
        return [
            (c.table, c.column, kid)
            for c in self.columns
            for kid, n in sorted(c.by_key.items())
            if n and kid not in self.key_ids
        ]

    def count(self, key_id: str) -> int:
        return self.by_key.get(key_id, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "active_key_id": self.active_key_id,
            "key_ids": list(self.key_ids),
            "by_key": self.by_key,
            "total": self.total,
            "remaining": self.remaining,
            "unknown": [
                {"table": t, "column": c, "key_id": k} for t, c, k in self.unknown
            ],
            "columns": [
                {"table": c.table, "column": c.column, "by_key": dict(sorted(c.by_key.items()))}
                for c in self.columns
            ],
        }


def _kid_sql(col: str) -> str:
    return (
        f"CASE WHEN octet_length({col}) >= 2 AND get_byte({col}, 0) = {BLOB_VERSION} "
        f"THEN substring({col} from 3 for get_byte({col}, 1)) END"
    )


def key_status(
    container: Container,
    *,
    actor: Actor = ACTOR,
    columns: Sequence[EncryptedColumn] = COLUMNS,
) -> KeyStatus:
    """Count values per key id in every encrypted column (one scan per table, in SQL)."""
    ring = container.keyring
    counts: dict[tuple[str, str], dict[str, int]] = {
        (c.table, c.column): {} for c in columns
    }
    with _transaction(container, actor) as conn:
        for table, cols in _by_table(columns).items():
            pairs = ", ".join(f"('{c}', t.{c})" for c in cols)
            query = text(
                f"SELECT v.col, {_kid_sql('v.val')} AS kid, count(*) AS n "  # noqa: S608
                f"FROM {table} t CROSS JOIN LATERAL (VALUES {pairs}) AS v(col, val) "
                "WHERE v.val IS NOT NULL GROUP BY 1, 2"
            )
            for row in conn.execute(query):
                per = counts[(table, str(row.col))]
                name = _show_key_id(row.kid)
                per[name] = per.get(name, 0) + int(row.n)
    return KeyStatus(
        active_key_id=ring.active_id,
        key_ids=tuple(sorted(ring.keys)),
        columns=tuple(ColumnStatus(c.table, c.column, counts[(c.table, c.column)])
                      for c in columns),
    )


# --------------------------------------------------------------------------- rotation

RowRef = tuple[uuid.UUID, uuid.UUID]  # (clinic_id, id)
Progress = Callable[[str, int], None]  # (table, values done in the batch)
OnSelected = Callable[[str, Sequence[RowRef]], None]  # (table, rows read, not yet written)


@dataclass
class ColumnRotation:
    table: str
    column: str
    rotated: int = 0
    skipped: int = 0  # changed by someone else between read and write: left as they are


@dataclass
class RotationReport:
    to_key: str
    columns: list[ColumnRotation]
    status: KeyStatus
    batches: int = 0
    complete: bool = True  # False when stopped by ``max_batches``

    @property
    def rotated(self) -> int:
        return sum(c.rotated for c in self.columns)

    @property
    def skipped(self) -> int:
        return sum(c.skipped for c in self.columns)

    def as_dict(self) -> dict[str, Any]:
        return {
            "to_key": self.to_key,
            "rotated": self.rotated,
            "skipped": self.skipped,
            "batches": self.batches,
            "complete": self.complete,
            "columns": [
                {"table": c.table, "column": c.column, "rotated": c.rotated,
                 "skipped": c.skipped}
                for c in self.columns
            ],
            "status": self.status.as_dict(),
        }


@dataclass
class _Batch:
    refs: list[RowRef] = field(default_factory=list)
    # per column: old and new ciphertext per row (None: leave the column alone)
    old: dict[str, list[bytes | None]] = field(default_factory=dict)
    new: dict[str, list[bytes | None]] = field(default_factory=dict)


def _select_sql(table: str, cols: Sequence[str]) -> str:
    todo = " OR ".join(
        f"({c} IS NOT NULL AND substring({c} from 1 for :hlen) <> :hdr)" for c in cols
    )
    return (
        f"SELECT clinic_id, id, {', '.join(cols)} FROM {table} "  # noqa: S608
        "WHERE (clinic_id, id) > (:after_clinic, :after_id) "
        f"AND ({todo}) ORDER BY clinic_id, id LIMIT :lim"
    )


def _update_sql(table: str, cols: Sequence[str]) -> str:
    sets = ", ".join(
        f"{c} = CASE WHEN v.n_{c} IS NOT NULL AND t.{c} = v.o_{c} THEN v.n_{c} ELSE t.{c} END"
        for c in cols
    )
    arrays = ", ".join(
        f"CAST(:o_{c} AS bytea[]), CAST(:n_{c} AS bytea[])" for c in cols
    )
    names = ", ".join(f"o_{c}, n_{c}" for c in cols)
    guard = " OR ".join(f"(v.n_{c} IS NOT NULL AND t.{c} = v.o_{c})" for c in cols)
    returning = ", ".join(f"t.{c} = v.n_{c} AS ok_{c}" for c in cols)
    return (
        f"UPDATE {table} AS t SET {sets} "  # noqa: S608
        f"FROM unnest(CAST(:clinics AS uuid[]), CAST(:ids AS uuid[]), {arrays}) "
        f"AS v(clinic_id, id, {names}) "
        f"WHERE t.clinic_id = v.clinic_id AND t.id = v.id AND ({guard}) "
        f"RETURNING t.clinic_id, t.id, {returning}"
    )


def _reencrypt(cipher: FieldCipher, table: str, cols: Sequence[str], rows: Sequence[Any],
               header: bytes) -> _Batch:
    batch = _Batch(old={c: [] for c in cols}, new={c: [] for c in cols})
    for row in rows:
        clinic_id, row_id = row[0], row[1]
        batch.refs.append((clinic_id, row_id))
        for i, col in enumerate(cols, start=2):
            blob = None if row[i] is None else bytes(row[i])
            if blob is None or blob.startswith(header):
                batch.old[col].append(None)
                batch.new[col].append(None)
                continue
            try:
                plain = cipher.decrypt(blob, table=table, column=col, row_id=row_id)
            except DecryptionError as exc:
                raise KeyRotationError(
                    f"rotation stopped at {table}.{col}, key id {_key_id_of(blob)}, row "
                    f"{clinic_id}/{row_id}: {exc}; nothing of this batch was written"
                ) from None
            batch.old[col].append(blob)
            batch.new[col].append(cipher.encrypt(plain, table=table, column=col, row_id=row_id))
    return batch


def _write(conn: Connection, table: str, cols: Sequence[str], batch: _Batch,
           tally: dict[str, ColumnRotation]) -> None:
    params: dict[str, Any] = {
        "clinics": [r[0] for r in batch.refs], "ids": [r[1] for r in batch.refs],
    }
    for c in cols:
        params[f"o_{c}"] = batch.old[c]
        params[f"n_{c}"] = batch.new[c]
    written: dict[RowRef, Any] = {
        (row.clinic_id, row.id): row
        for row in conn.execute(text(_update_sql(table, cols)), params)
    }
    for i, ref in enumerate(batch.refs):
        row = written.get(ref)
        for c in cols:
            if batch.new[c][i] is None:
                continue
            if row is not None and getattr(row, f"ok_{c}"):
                tally[c].rotated += 1
            else:
                tally[c].skipped += 1


def ensure_known_keys(status: KeyStatus) -> None:
    """Raise ``KeyRotationError`` if some value is under a key id the key ring lacks."""
    if status.unknown:
        where = ", ".join(f"{t}.{c} (key id {k})" for t, c, k in status.unknown)
        raise KeyRotationError(
            f"values under key ids this key ring does not hold: {where}; add the missing key "
            "to the key ring (or restore it) before rotating; nothing was changed"
        )


def rotate(
    container: Container,
    *,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int | None = None,
    actor: Actor = ACTOR,
    columns: Sequence[EncryptedColumn] = COLUMNS,
    progress: Progress | None = None,
    on_selected: OnSelected | None = None,
    before: KeyStatus | None = None,
) -> RotationReport:
    """Re-encrypt every value not under the active key with it; see the module docstring.

    ``max_batches`` stops after that many batches (over all tables): the report then has
    ``complete=False`` and running again continues. ``progress`` is called after each
    batch with the number of values handled; ``on_selected`` after a batch is read and
    before it is written (tests use it to edit a row concurrently). ``before`` is a status
    computed just before (the CLI already has one for its progress bar).
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch size must be between 1 and {MAX_BATCH}")
    if max_batches is not None and max_batches < 1:
        raise ValueError("max_batches must be at least 1")
    active = container.keyring.active_id
    header = _header(active)
    before = before or key_status(container, actor=actor, columns=columns)
    ensure_known_keys(before)

    report = RotationReport(
        to_key=active, status=before,
        columns=[ColumnRotation(c.table, c.column) for c in columns],
    )
    for table, cols in _by_table(columns).items():
        todo = sum(n for c in before.columns if c.table == table
                   for kid, n in c.by_key.items() if kid != active)
        if not todo:
            continue
        tally = {c.column: c for c in report.columns if c.table == table}
        try:
            report.complete = _rotate_table(
                container, table, cols, report, tally, header=header, batch_size=batch_size,
                max_batches=max_batches, actor=actor, progress=progress,
                on_selected=on_selected,
            )
        finally:
            for c in tally.values():
                if c.rotated:
                    _record(container, actor, f"{c.table}.{c.column}", {
                        "table": c.table, "column": c.column, "values": c.rotated,
                        "skipped": c.skipped, "to_key": active,
                    })
        if not report.complete:
            break
    report.status = key_status(container, actor=actor, columns=columns)
    log.info("key_rotation", to_key=active, rotated=report.rotated, skipped=report.skipped,
             batches=report.batches, complete=report.complete,
             remaining=report.status.remaining)
    return report


def _rotate_table(
    container: Container, table: str, cols: Sequence[str], report: RotationReport,
    tally: dict[str, ColumnRotation], *, header: bytes, batch_size: int,
    max_batches: int | None, actor: Actor, progress: Progress | None,
    on_selected: OnSelected | None,
) -> bool:
    """Rotate one table's columns; False when ``max_batches`` stopped it first."""
    select_sql = text(_select_sql(table, cols))
    after: RowRef = (uuid.UUID(int=0), uuid.UUID(int=0))
    while True:
        if max_batches is not None and report.batches >= max_batches:
            return False
        with _transaction(container, actor) as conn:
            rows = conn.execute(select_sql, {
                "after_clinic": after[0], "after_id": after[1], "lim": batch_size,
                "hlen": len(header), "hdr": header,
            }).all()
            if not rows:
                return True
            batch = _reencrypt(container.cipher, table, cols, rows, header)
            if on_selected is not None:
                on_selected(table, batch.refs)
            done_before = sum(c.rotated + c.skipped for c in tally.values())
            _write(conn, table, cols, batch, tally)
        report.batches += 1
        after = batch.refs[-1]
        if progress is not None:
            progress(table, sum(c.rotated + c.skipped for c in tally.values()) - done_before)
        if len(rows) < batch_size:
            return True


# --------------------------------------------------------------------------- blind index


@dataclass(frozen=True)
class IndexConflict:
    """A patient whose new blind index collides with another patient's of the same clinic."""

    clinic_id: uuid.UUID
    patient_id: uuid.UUID
    kind: str  # "cpf" or "cns"
    other_patient_id: uuid.UUID | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "clinic_id": str(self.clinic_id), "patient_id": str(self.patient_id),
            "kind": self.kind,
            "other_patient_id": str(self.other_patient_id) if self.other_patient_id else None,
        }


@dataclass
class ReindexReport:
    updated: int = 0  # rows whose indexes were rewritten
    skipped: int = 0  # rows changed by someone else meanwhile (the next pass re-reads them)
    orphaned: int = 0  # an index without its ciphertext: left alone
    conflicts: list[IndexConflict] = field(default_factory=list)
    passes: int = 0
    batches: int = 0
    complete: bool = False  # a whole pass found nothing left to rewrite
    stopped: bool = False  # stopped by ``max_batches``: run again to continue

    def as_dict(self) -> dict[str, Any]:
        return {
            "updated": self.updated, "skipped": self.skipped, "orphaned": self.orphaned,
            "conflicts": [c.as_dict() for c in self.conflicts], "passes": self.passes,
            "batches": self.batches, "complete": self.complete, "stopped": self.stopped,
        }


_REINDEX_WHERE = (
    "(cpf_encrypted IS NOT NULL OR cns_encrypted IS NOT NULL OR cpf_blind_index IS NOT NULL "
    "OR cns_blind_index IS NOT NULL)"
)
_REINDEX_SELECT = text(
    "SELECT clinic_id, id, cpf_encrypted, cns_encrypted, cpf_blind_index, "  # noqa: S608
    "cns_blind_index FROM patients WHERE (clinic_id, id) > (:after_clinic, :after_id) AND "
    f"{_REINDEX_WHERE} ORDER BY clinic_id, id LIMIT :lim"
)
_REINDEX_UPDATE = text(
    "UPDATE patients AS t SET "
    "cpf_blind_index = coalesce(v.cpf_new, t.cpf_blind_index), "
    "cns_blind_index = coalesce(v.cns_new, t.cns_blind_index) "
    "FROM unnest(CAST(:clinics AS uuid[]), CAST(:ids AS uuid[]), CAST(:cpf_ct AS bytea[]), "
    "CAST(:cns_ct AS bytea[]), CAST(:cpf_new AS bytea[]), CAST(:cns_new AS bytea[])) "
    "AS v(clinic_id, id, cpf_ct, cns_ct, cpf_new, cns_new) "
    "WHERE t.clinic_id = v.clinic_id AND t.id = v.id "
    "AND t.cpf_encrypted IS NOT DISTINCT FROM v.cpf_ct "
    "AND t.cns_encrypted IS NOT DISTINCT FROM v.cns_ct "
    "RETURNING t.id"
)


@dataclass(frozen=True)
class _IndexChange:
    clinic_id: uuid.UUID
    id: uuid.UUID
    cpf_ct: bytes | None
    cns_ct: bytes | None
    cpf_new: bytes | None  # None: this index stays as it is
    cns_new: bytes | None


def _index_changes(cipher: FieldCipher, indexer: BlindIndexer, rows: Sequence[Any],
                   report: ReindexReport) -> list[_IndexChange]:
    changes = []
    for row in rows:
        new: dict[str, bytes | None] = {}
        cts: dict[str, bytes | None] = {}
        for kind, (ct_col, bi_col) in BLIND_COLUMNS.items():
            ct = getattr(row, ct_col)
            ct = None if ct is None else bytes(ct)
            current = getattr(row, bi_col)
            cts[kind] = ct
            new[kind] = None
            if ct is None:
                report.orphaned += current is not None
                continue
            try:
                plain = cipher.decrypt(ct, table="patients", column=ct_col, row_id=row.id)
            except DecryptionError as exc:
                raise KeyRotationError(
                    f"re-indexing stopped at patients.{ct_col}, key id {_key_id_of(ct)}, row "
                    f"{row.clinic_id}/{row.id}: {exc}"
                ) from None
            index = indexer.index(kind, plain)
            if current is None or bytes(current) != index:
                new[kind] = index
        if new["cpf"] is not None or new["cns"] is not None:
            changes.append(_IndexChange(row.clinic_id, row.id, cts["cpf"], cts["cns"],
                                        new["cpf"], new["cns"]))
    return changes


def _apply_index_changes(conn: Connection, changes: Sequence[_IndexChange]) -> int:
    result = conn.execute(_REINDEX_UPDATE, {
        "clinics": [c.clinic_id for c in changes], "ids": [c.id for c in changes],
        "cpf_ct": [c.cpf_ct for c in changes], "cns_ct": [c.cns_ct for c in changes],
        "cpf_new": [c.cpf_new for c in changes], "cns_new": [c.cns_new for c in changes],
    })
    return len(result.all())


def _conflict(conn: Connection, change: _IndexChange, exc: IntegrityError) -> IndexConflict:
    kind = "cns" if "cns" in constraint_name(exc) else "cpf"
    index = change.cns_new if kind == "cns" else change.cpf_new
    column = BLIND_COLUMNS[kind][1]
    other = conn.execute(
        text(f"SELECT id FROM patients WHERE clinic_id = :c AND {column} = :bi "  # noqa: S608
             "AND id <> :id LIMIT 1"),
        {"c": change.clinic_id, "bi": index, "id": change.id},
    ).scalar()
    return IndexConflict(change.clinic_id, change.id, kind, other)


def blind_indexed_patients(container: Container, *, actor: Actor = ACTOR) -> int:
    """How many patients a re-indexing pass reads (for a progress bar)."""
    with _transaction(container, actor) as conn:
        query = text(f"SELECT count(*) FROM patients WHERE {_REINDEX_WHERE}")  # noqa: S608
        return int(conn.execute(query).scalar_one())


def reindex_blind(
    container: Container,
    new_blind_index_key: bytes,
    *,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int | None = None,
    actor: Actor = ACTOR,
    progress: Progress | None = None,
    on_selected: OnSelected | None = None,
) -> ReindexReport:
    """Rewrite every CPF/CNS blind index with ``new_blind_index_key``; see the module doc.

    Passes over all patients until one finds nothing to rewrite (at most
    ``REINDEX_PASSES``), so rows written meanwhile with the old key are caught. Rows that
    would break a per-clinic unique constraint keep their old index and are listed in
    ``conflicts``; the caller must not switch to the new key while there are any.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch size must be between 1 and {MAX_BATCH}")
    ring = container.keyring
    indexer = BlindIndexer(KeyRing(keys=ring.keys, active_id=ring.active_id,
                                   blind_index_key=new_blind_index_key))
    report = ReindexReport()
    try:
        for _ in range(REINDEX_PASSES):
            report.passes += 1
            report.conflicts = []
            report.orphaned = 0
            before = (report.updated, report.skipped)
            if not _reindex_pass(container, indexer, report, batch_size=batch_size,
                                 max_batches=max_batches, actor=actor, progress=progress,
                                 on_selected=on_selected):
                report.stopped = True
                return report
            if (report.updated, report.skipped) == before:
                report.complete = True
                break
    finally:
        if report.updated:
            _record(container, actor, "patients.blind_index", {
                "table": "patients", "column": "cpf_blind_index,cns_blind_index",
                "values": report.updated, "conflicts": len(report.conflicts),
                "to_key": "next_blind_index_key", "passes": report.passes,
            })
        log.info("blind_reindex", updated=report.updated, skipped=report.skipped,
                 conflicts=len(report.conflicts), passes=report.passes,
                 complete=report.complete)
    return report


def remove_key(container: Container, key_file: Path, key_id: str) -> None:
    """Remove ``key_id`` from ``key_file`` once no value uses it (counted in the database
    first); never the active key. KeyRotationError says why not."""
    report = key_status(container)
    if key_id == report.active_key_id:
        raise KeyRotationError(f"{key_id} is the active key: add and activate another one "
                               "first")
    left = report.count(key_id)
    if left:
        raise KeyRotationError(f"{left} value(s) are still encrypted under {key_id}: run "
                               "`neonpro keys rotate` first (and restart any process that "
                               "still has it active)")
    remove_key_from_file(key_file, key_id)


def promote_blind_key(report: ReindexReport, new_blind_index_key: bytes,
                      key_file: Path | None) -> bool:
    """Put the new blind-index key in use after :func:`reindex_blind`, or say why not
    (False): only when a whole pass found nothing left to rewrite and no row conflicted (the
    old key stays otherwise, so every lookup keeps working), and only in a key file (keys
    from the environment are switched by the operator). The old key is kept as retired."""
    if not report.complete or report.conflicts or key_file is None:
        return False
    promote_blind_index_key(key_file, new_blind_index_key,
                            retired_at=datetime.now(UTC).isoformat(timespec="seconds"))
    return True


def _reindex_pass(
    container: Container, indexer: BlindIndexer, report: ReindexReport, *, batch_size: int,
    max_batches: int | None, actor: Actor, progress: Progress | None,
    on_selected: OnSelected | None,
) -> bool:
    after: RowRef = (uuid.UUID(int=0), uuid.UUID(int=0))
    while True:
        if max_batches is not None and report.batches >= max_batches:
            return False
        with _transaction(container, actor) as conn:
            rows = conn.execute(_REINDEX_SELECT, {
                "after_clinic": after[0], "after_id": after[1], "lim": batch_size,
            }).all()
            if not rows:
                return True
            changes = _index_changes(container.cipher, indexer, rows, report)
            if on_selected is not None:
                on_selected("patients", [(c.clinic_id, c.id) for c in changes])
        if changes:
            _write_index_changes(container, actor, changes, report)
        report.batches += 1
        after = (rows[-1].clinic_id, rows[-1].id)
        if progress is not None:
            progress(f"patients (pass {report.passes})", len(rows))
        if len(rows) < batch_size:
            return True


def _write_index_changes(container: Container, actor: Actor,
                         changes: Sequence[_IndexChange], report: ReindexReport) -> None:
    conflicts: list[IndexConflict] = []
    try:
        with _transaction(container, actor) as conn:
            written = _apply_index_changes(conn, changes)
    except IntegrityError:
        # a collision somewhere in the batch: redo it row by row to find which
        written = 0
        with _transaction(container, actor) as conn:
            for change in changes:
                try:
                    with conn.begin_nested():
                        written += _apply_index_changes(conn, [change])
                except IntegrityError as exc:
                    conflicts.append(_conflict(conn, change, exc))
    report.updated += written
    report.skipped += len(changes) - written - len(conflicts)
    report.conflicts += conflicts
