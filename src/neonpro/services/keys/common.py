"""What key upkeep works on: the encrypted columns, key-id headers, the service
role's transactions and the audit events of the operations."""


from __future__ import annotations

import re
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import structlog
from sqlalchemy import Connection, text

from neonpro.adapters.crypto import (
    BLOB_VERSION,
)
from neonpro.adapters.db.repositories import appointment as appointment_repo
from neonpro.adapters.db.repositories import patient as patient_repo
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.errors import OperationFailed
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel

if TYPE_CHECKING:
    from neonpro.bootstrap import Container

log = structlog.get_logger("neonpro.services.keys")

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
