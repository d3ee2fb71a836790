"""Re-keying the CPF/CNS blind indexes with a new blind-index key."""


from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from neonpro.adapters.crypto import (
    BlindIndexer,
    DecryptionError,
    FieldCipher,
    KeyRing,
    promote_blind_index_key,
)
from neonpro.adapters.db.errors import constraint_name
from neonpro.domain.actors import Actor
from neonpro.services.keys.common import (
    ACTOR,
    BLIND_COLUMNS,
    DEFAULT_BATCH,
    MAX_BATCH,
    REINDEX_PASSES,
    KeyRotationError,
    _key_id_of,
    _record,
    _transaction,
    log,
)
from neonpro.services.keys.rotation import (
    OnSelected,
    Progress,
    RowRef,
)

if TYPE_CHECKING:
    from neonpro.bootstrap import Container

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
