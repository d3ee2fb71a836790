"""Rotation: re-encrypting every value not under the active key, in short batches;
removing a key no value uses any more."""


from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neonpro.domain.actors import Actor
from neonpro.domain.ports_keys import (
    Cipher,
    EncryptedColumn,
    KeyUpkeep,
    RowRef,
    UnreadableValue,
    key_header,
    key_id_of,
)
from neonpro.services.key_batches import DEFAULT_BATCH, MAX_BATCH
from neonpro.services.keys.common import (
    ACTOR,
    KeyRotationError,
    _by_table,
    _record,
    log,
)
from neonpro.services.keys.status import (
    KeyStatus,
    key_status,
)

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


def _reencrypt(cipher: Cipher, table: str, cols: Sequence[str], rows: Sequence[Any],
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
            except UnreadableValue as exc:
                raise KeyRotationError(
                    f"rotation stopped at {table}.{col}, key id {key_id_of(blob)}, row "
                    f"{clinic_id}/{row_id}: {exc}; nothing of this batch was written"
                ) from None
            batch.old[col].append(blob)
            batch.new[col].append(cipher.encrypt(plain, table=table, column=col, row_id=row_id))
    return batch


def _tally(written: Mapping[RowRef, Mapping[str, bool]], cols: Sequence[str], batch: _Batch,
           tally: dict[str, ColumnRotation]) -> None:
    """Count each value rotated, or skipped when the row changed between read and write."""
    for i, ref in enumerate(batch.refs):
        row = written.get(ref)
        for c in cols:
            if batch.new[c][i] is None:
                continue
            if row is not None and row[c]:
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
    keys: KeyUpkeep,
    *,
    batch_size: int = DEFAULT_BATCH,
    max_batches: int | None = None,
    actor: Actor = ACTOR,
    columns: Sequence[EncryptedColumn] | None = None,
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
    _check_batching(batch_size, max_batches)
    if columns is None:
        columns = keys.key_store.encrypted_columns
    active = keys.keyring.active_id
    header = key_header(active)
    before = before or key_status(keys, actor=actor, columns=columns)
    ensure_known_keys(before)

    report = RotationReport(
        to_key=active, status=before,
        columns=[ColumnRotation(c.table, c.column) for c in columns],
    )
    for table, cols in _by_table(columns).items():
        if not _to_rotate(before, table, active):
            continue
        tally = {c.column: c for c in report.columns if c.table == table}
        try:
            report.complete = _rotate_table(
                keys, table, cols, report, tally, header=header, batch_size=batch_size,
                max_batches=max_batches, actor=actor, progress=progress,
                on_selected=on_selected,
            )
        finally:
            _record_rotations(keys, actor, tally, active)
        if not report.complete:
            break
    report.status = key_status(keys, actor=actor, columns=columns)
    log.info("key_rotation", to_key=active, rotated=report.rotated, skipped=report.skipped,
             batches=report.batches, complete=report.complete,
             remaining=report.status.remaining)
    return report


def _check_batching(batch_size: int, max_batches: int | None) -> None:
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch size must be between 1 and {MAX_BATCH}")
    if max_batches is not None and max_batches < 1:
        raise ValueError("max_batches must be at least 1")


def _to_rotate(before: KeyStatus, table: str, active: str) -> int:
    """How many values of ``table`` are not under the active key."""
    return sum(n for c in before.columns if c.table == table
               for kid, n in c.by_key.items() if kid != active)


def _record_rotations(keys: KeyUpkeep, actor: Actor, tally: dict[str, ColumnRotation],
                      active: str) -> None:
    """One KEY_ROTATION summary event per column that had values rotated."""
    for c in tally.values():
        if c.rotated:
            _record(keys, actor, f"{c.table}.{c.column}", {
                "table": c.table, "column": c.column, "values": c.rotated,
                "skipped": c.skipped, "to_key": active,
            })


def _rotate_table(
    keys: KeyUpkeep, table: str, cols: Sequence[str], report: RotationReport,
    tally: dict[str, ColumnRotation], *, header: bytes, batch_size: int,
    max_batches: int | None, actor: Actor, progress: Progress | None,
    on_selected: OnSelected | None,
) -> bool:
    """Rotate one table's columns; False when ``max_batches`` stopped it first."""
    after: RowRef = (uuid.UUID(int=0), uuid.UUID(int=0))
    while True:
        if max_batches is not None and report.batches >= max_batches:
            return False
        with keys.key_store.transaction(actor) as tx:
            rows = tx.rows_to_rotate(table, cols, after, batch_size, header)
            if not rows:
                return True
            batch = _reencrypt(keys.cipher, table, cols, rows, header)
            if on_selected is not None:
                on_selected(table, batch.refs)
            done_before = sum(c.rotated + c.skipped for c in tally.values())
            _tally(tx.write_rotation(table, cols, batch.refs, batch.old, batch.new), cols,
                   batch, tally)
        report.batches += 1
        after = batch.refs[-1]
        if progress is not None:
            progress(table, sum(c.rotated + c.skipped for c in tally.values()) - done_before)
        if len(rows) < batch_size:
            return True


def remove_key(keys: KeyUpkeep, key_file: Path, key_id: str) -> None:
    """Remove ``key_id`` from ``key_file`` once no value uses it (counted in the database
    first); never the active key. KeyRotationError says why not."""
    report = key_status(keys)
    if key_id == report.active_key_id:
        raise KeyRotationError(f"{key_id} is the active key: add and activate another one "
                               "first")
    left = report.count(key_id)
    if left:
        raise KeyRotationError(f"{left} value(s) are still encrypted under {key_id}: run "
                               "`neonpro keys rotate` first (and restart any process that "
                               "still has it active)")
    keys.remove_key_from_file(key_file, key_id)
