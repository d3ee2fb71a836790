"""Key upkeep's ports: the field cipher and blind indexes, the key ring and key file, and
the SQL of counting, re-encrypting and re-indexing (``adapters/db/keys_sql.py``).

Also what they exchange: encrypted columns, the key-id header of a stored value, index
changes and conflicts. Nothing here holds or returns a plaintext value beyond ``decrypt``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from neonpro.domain.actors import Actor
from neonpro.domain.ports import UnitOfWork

BLOB_VERSION: Final = 1  # the first byte of every stored value: [version, len(kid), kid, ...]
MALFORMED: Final = "<malformed>"
RowRef = tuple[uuid.UUID, uuid.UUID]  # (clinic_id, id)

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


class UnreadableValue(RuntimeError):
    """A stored value does not decrypt (a key missing, the value damaged); the message names
    table, column and key id, never the value."""


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


def key_header(key_id: str) -> bytes:
    """The first bytes of every value encrypted under ``key_id``."""
    kid = key_id.encode("ascii")
    return bytes((BLOB_VERSION, len(kid))) + kid


def show_key_id(raw: bytes | None) -> str:
    """A key id as read from a header, or :data:`MALFORMED` (never other bytes)."""
    if raw is None:
        return MALFORMED
    try:
        kid = bytes(raw).decode("ascii")
    except UnicodeDecodeError:
        return MALFORMED
    return kid if _KEY_ID.fullmatch(kid) else MALFORMED


def key_id_of(blob: bytes) -> str:
    blob = bytes(blob)
    if len(blob) < 2 or blob[0] != BLOB_VERSION:  # noqa: PLR2004
        return MALFORMED
    return show_key_id(blob[2 : 2 + blob[1]])


@dataclass(frozen=True)
class BlindIndexed:
    """A patient's CPF/CNS ciphertexts and blind indexes, by kind (``cpf``, ``cns``)."""

    clinic_id: uuid.UUID
    id: uuid.UUID
    ciphertext: Mapping[str, bytes | None]
    index: Mapping[str, bytes | None]


@dataclass(frozen=True)
class IndexChange:
    clinic_id: uuid.UUID
    id: uuid.UUID
    cpf_ct: bytes | None  # the ciphertexts read: the row is written only if they still hold
    cns_ct: bytes | None
    cpf_new: bytes | None  # None: this index stays as it is
    cns_new: bytes | None


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


class Cipher(Protocol):
    def encrypt(self, plaintext: str, *, table: str, column: str, row_id: uuid.UUID) -> bytes: ...
    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: uuid.UUID) -> str:
        """The plaintext; :class:`UnreadableValue` if it does not decrypt."""
        ...


class BlindIndex(Protocol):
    def index(self, kind: str, normalized_value: str) -> bytes: ...


class KeyRingView(Protocol):
    @property
    def keys(self) -> Mapping[str, bytes]: ...
    @property
    def active_id(self) -> str: ...


class KeyBatch(Protocol):
    """One short service-role transaction of key upkeep, across clinics."""

    def key_counts(self, table: str, columns: Sequence[str]) -> list[tuple[str, bytes | None, int]]:
        """(column, raw key id or None, values) for every value of ``columns``."""
        ...
    def rows_to_rotate(self, table: str, columns: Sequence[str], after: RowRef, limit: int,
                       header: bytes) -> list[Sequence[Any]]:
        """``(clinic_id, id, *values)`` after ``after`` in key order, of rows with a value
        not starting with ``header``."""
        ...
    def write_rotation(self, table: str, columns: Sequence[str], refs: Sequence[RowRef],
                       old: Mapping[str, Sequence[bytes | None]],
                       new: Mapping[str, Sequence[bytes | None]]) -> dict[RowRef, dict[str, bool]]:
        """Write ``new`` where the column still holds ``old``; per row written, per column,
        whether its new value is in place."""
        ...
    def rows_to_reindex(self, after: RowRef, limit: int) -> list[BlindIndexed]: ...
    def count_blind_indexed(self) -> int: ...


class KeyStore(Protocol):
    @property
    def encrypted_columns(self) -> tuple[EncryptedColumn, ...]: ...
    @property
    def blind_columns(self) -> Mapping[str, str]:
        """Blind-index kind -> the patients' ciphertext column it indexes."""
        ...
    def transaction(self, actor: Actor) -> AbstractContextManager[KeyBatch]: ...
    def write_index_changes(self, actor: Actor, changes: Sequence[IndexChange],
                            ) -> tuple[int, list[IndexConflict]]:
        """Apply ``changes`` (rows changed meanwhile are left); a change that would break a
        unique index is left too and returned as a conflict. (rows written, conflicts)."""
        ...


class KeyFiles(Protocol):
    def remove_key_from_file(self, path: Path, key_id: str) -> None: ...
    def promote_blind_index_key(self, path: Path, key: bytes, *, retired_at: str) -> None: ...


class KeyUpkeep(KeyFiles, Protocol):
    """What key upkeep needs (the composition root implements it)."""

    @property
    def keyring(self) -> KeyRingView: ...
    @property
    def cipher(self) -> Cipher: ...
    @property
    def key_store(self) -> KeyStore: ...
    def service_uow(self, actor: Actor) -> UnitOfWork: ...
    def blind_indexer_with(self, blind_index_key: bytes) -> BlindIndex:
        """Blind indexes under another blind-index key (the rest of the key ring as is)."""
        ...
