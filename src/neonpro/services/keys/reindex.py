"""Re-keying the CPF/CNS blind indexes with a new blind-index key."""


from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neonpro.domain.actors import Actor
from neonpro.domain.ports_keys import (
    BlindIndex,
    BlindIndexed,
    Cipher,
    IndexChange,
    IndexConflict,
    KeyFiles,
    KeyUpkeep,
    RowRef,
    UnreadableValue,
    key_id_of,
)
from neonpro.services.key_batches import DEFAULT_BATCH, MAX_BATCH
from neonpro.services.keys.common import (
    ACTOR,
    REINDEX_PASSES,
    KeyRotationError,
    _record,
    log,
)
from neonpro.services.keys.rotation import (
    OnSelected,
    Progress,
)


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


def _new_index(cipher: Cipher, indexer: BlindIndex, row: BlindIndexed, kind: str,
               column: str, report: ReindexReport) -> bytes | None:
    """The index ``kind`` of ``row`` should have under the new key, if it differs."""
    ct, current = row.ciphertext[kind], row.index[kind]
    if ct is None:
        report.orphaned += current is not None
        return None
    try:
        plain = cipher.decrypt(ct, table="patients", column=column, row_id=row.id)
    except UnreadableValue as exc:
        raise KeyRotationError(
            f"re-indexing stopped at patients.{column}, key id {key_id_of(ct)}, row "
            f"{row.clinic_id}/{row.id}: {exc}"
        ) from None
    index = indexer.index(kind, plain)
    return index if current != index else None


def _index_changes(cipher: Cipher, indexer: BlindIndex, columns: Mapping[str, str],
                   rows: Sequence[BlindIndexed], report: ReindexReport) -> list[IndexChange]:
    changes = []
    for row in rows:
        new = {kind: _new_index(cipher, indexer, row, kind, column, report)
               for kind, column in columns.items()}
        if new["cpf"] is not None or new["cns"] is not None:
            changes.append(IndexChange(row.clinic_id, row.id, row.ciphertext["cpf"],
                                       row.ciphertext["cns"], new["cpf"], new["cns"]))
    return changes


def blind_indexed_patients(keys: KeyUpkeep, *, actor: Actor = ACTOR) -> int:
    """How many patients a re-indexing pass reads (for a progress bar)."""
    with keys.key_store.transaction(actor) as tx:
        return tx.count_blind_indexed()


def reindex_blind(
    keys: KeyUpkeep,
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
    indexer = keys.blind_indexer_with(new_blind_index_key)
    report = ReindexReport()
    try:
        for _ in range(REINDEX_PASSES):
            report.passes += 1
            report.conflicts = []
            report.orphaned = 0
            before = (report.updated, report.skipped)
            if not _reindex_pass(keys, indexer, report, batch_size=batch_size,
                                 max_batches=max_batches, actor=actor, progress=progress,
                                 on_selected=on_selected):
                report.stopped = True
                return report
            if (report.updated, report.skipped) == before:
                report.complete = True
                break
    finally:
        if report.updated:
            _record(keys, actor, "patients.blind_index", {
                "table": "patients", "column": "cpf_blind_index,cns_blind_index",
                "values": report.updated, "conflicts": len(report.conflicts),
                "to_key": "next_blind_index_key", "passes": report.passes,
            })
        log.info("blind_reindex", updated=report.updated, skipped=report.skipped,
                 conflicts=len(report.conflicts), passes=report.passes,
                 complete=report.complete)
    return report


def promote_blind_key(files: KeyFiles, report: ReindexReport, new_blind_index_key: bytes,
                      key_file: Path | None) -> bool:
    """Put the new blind-index key in use after :func:`reindex_blind`, or say why not
    (False): only when a whole pass found nothing left to rewrite and no row conflicted (the
    old key stays otherwise, so every lookup keeps working), and only in a key file (keys
    from the environment are switched by the operator). The old key is kept as retired."""
    if not report.complete or report.conflicts or key_file is None:
        return False
    files.promote_blind_index_key(key_file, new_blind_index_key,
                                  retired_at=datetime.now(UTC).isoformat(timespec="seconds"))
    return True


def _reindex_pass(
    keys: KeyUpkeep, indexer: BlindIndex, report: ReindexReport, *, batch_size: int,
    max_batches: int | None, actor: Actor, progress: Progress | None,
    on_selected: OnSelected | None,
) -> bool:
    after: RowRef = (uuid.UUID(int=0), uuid.UUID(int=0))
    while True:
        if max_batches is not None and report.batches >= max_batches:
            return False
        with keys.key_store.transaction(actor) as tx:
            rows = tx.rows_to_reindex(after, batch_size)
            if not rows:
                return True
            changes = _index_changes(keys.cipher, indexer, keys.key_store.blind_columns, rows,
                                     report)
            if on_selected is not None:
                on_selected("patients", [(c.clinic_id, c.id) for c in changes])
        if changes:
            written, conflicts = keys.key_store.write_index_changes(actor, changes)
            report.updated += written
            report.skipped += len(changes) - written - len(conflicts)
            report.conflicts += conflicts
        report.batches += 1
        after = (rows[-1].clinic_id, rows[-1].id)
        if progress is not None:
            progress(f"patients (pass {report.passes})", len(rows))
        if len(rows) < batch_size:
            return True
