"""In memory: what key upkeep works over. Values are "encrypted" as the key-id header plus
the plaintext (enough to tell under which key a value is, and to fail for a key the ring
lacks); tables are dicts of rows; the key file is a list of the edits asked for."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neonpro.domain.actors import Actor
from neonpro.domain.ports_keys import (
    BlindIndexed,
    EncryptedColumn,
    IndexChange,
    IndexConflict,
    RowRef,
    UnreadableValue,
    key_header,
    key_id_of,
)
from tests.unit.fakes import FakeUnitOfWork

Rows = dict[RowRef, dict[str, bytes | None]]


@dataclass(frozen=True)
class FakeRing:
    keys: Mapping[str, bytes]
    active_id: str


class FakeCipher:
    def __init__(self, ring: FakeRing) -> None:
        self.ring = ring

    def encrypt(self, plaintext: str, *, table: str, column: str, row_id: uuid.UUID) -> bytes:
        return key_header(self.ring.active_id) + plaintext.encode()

    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: uuid.UUID) -> str:
        kid = key_id_of(blob)
        if kid not in self.ring.keys:
            raise UnreadableValue(f"cannot decrypt {table}.{column}: no key {kid}")
        return blob[len(key_header(kid)):].decode()


class FakeIndexer:
    def __init__(self, key: bytes) -> None:
        self.key = key

    def index(self, kind: str, normalized_value: str) -> bytes:
        return hashlib.sha256(self.key + f"{kind}:{normalized_value}".encode()).digest()


class FakeKeyBatch:
    def __init__(self, tables: dict[str, Rows]) -> None:
        self.tables = tables

    def key_counts(self, table: str, columns: Sequence[str]) -> list[tuple[str, bytes | None, int]]:
        counts: dict[tuple[str, bytes | None], int] = {}
        for row in self.tables[table].values():
            for c in columns:
                if row[c] is not None:
                    kid = key_id_of(row[c] or b"").encode()
                    counts[(c, kid)] = counts.get((c, kid), 0) + 1
        return [(c, kid, n) for (c, kid), n in counts.items()]

    def rows_to_rotate(self, table: str, columns: Sequence[str], after: RowRef, limit: int,
                       header: bytes) -> list[Sequence[Any]]:
        todo = [(ref, row) for ref, row in sorted(self.tables[table].items()) if ref > after
                and any(row[c] is not None and not (row[c] or b"").startswith(header)
                        for c in columns)]
        return [(ref[0], ref[1], *(row[c] for c in columns)) for ref, row in todo[:limit]]

    def write_rotation(self, table: str, columns: Sequence[str], refs: Sequence[RowRef],
                       old: Mapping[str, Sequence[bytes | None]],
                       new: Mapping[str, Sequence[bytes | None]]) -> dict[RowRef, dict[str, bool]]:
        out = {}
        for i, ref in enumerate(refs):
            row = self.tables[table][ref]
            ok = {c: new[c][i] is not None and row[c] == old[c][i] for c in columns}
            if any(ok.values()):
                row.update({c: new[c][i] for c in columns if ok[c]})
                out[ref] = ok
        return out

    def rows_to_reindex(self, after: RowRef, limit: int) -> list[BlindIndexed]:
        rows = [(ref, row) for ref, row in sorted(self.tables["patients"].items())
                if ref > after][:limit]
        return [BlindIndexed(ref[0], ref[1], {k: row[f"{k}_encrypted"] for k in ("cpf", "cns")},
                             {k: row[f"{k}_blind_index"] for k in ("cpf", "cns")})
                for ref, row in rows]

    def count_blind_indexed(self) -> int:
        return len(self.tables["patients"])


class FakeKeyStore:
    encrypted_columns = (EncryptedColumn("patients", "cpf_encrypted"),
                         EncryptedColumn("patients", "cns_encrypted"),
                         EncryptedColumn("appointments", "notes_encrypted"))
    blind_columns: Mapping[str, str] = {"cpf": "cpf_encrypted", "cns": "cns_encrypted"}

    def __init__(self) -> None:
        self.tables: dict[str, Rows] = {"patients": {}, "appointments": {}}
        self.transactions = 0

    @contextmanager
    def transaction(self, actor: Actor) -> Iterator[FakeKeyBatch]:
        self.transactions += 1
        yield FakeKeyBatch(self.tables)

    def write_index_changes(self, actor: Actor, changes: Sequence[IndexChange],
                            ) -> tuple[int, list[IndexConflict]]:
        written, conflicts = 0, []
        rows = self.tables["patients"]
        for change in changes:
            row = rows[(change.clinic_id, change.id)]
            if (row["cpf_encrypted"], row["cns_encrypted"]) != (change.cpf_ct, change.cns_ct):
                continue
            other = next((ref[1] for ref, r in rows.items() if ref[0] == change.clinic_id
                          and ref[1] != change.id and change.cpf_new is not None
                          and r["cpf_blind_index"] == change.cpf_new), None)
            if other is not None:
                conflicts.append(IndexConflict(change.clinic_id, change.id, "cpf", other))
                continue
            for kind in ("cpf", "cns"):
                new = getattr(change, f"{kind}_new")
                if new is not None:
                    row[f"{kind}_blind_index"] = new
            written += 1
        return written, conflicts


@dataclass
class FakeKeys:
    keyring: FakeRing
    key_store: FakeKeyStore = field(default_factory=FakeKeyStore)
    store: dict[str, Any] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    file_edits: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def cipher(self) -> FakeCipher:
        return FakeCipher(self.keyring)

    def service_uow(self, actor: Actor) -> FakeUnitOfWork:
        tx = FakeUnitOfWork(actor, None, store=self.store)
        tx.audit.events = self.audit
        return tx

    def blind_indexer_with(self, blind_index_key: bytes) -> FakeIndexer:
        return FakeIndexer(blind_index_key)

    def remove_key_from_file(self, path: Path, key_id: str) -> None:
        self.file_edits.append(("remove", str(path), key_id))

    def promote_blind_index_key(self, path: Path, key: bytes, *, retired_at: str) -> None:
        self.file_edits.append(("promote", str(path)))
