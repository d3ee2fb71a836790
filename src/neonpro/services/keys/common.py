"""What key upkeep works on: the encrypted columns, key-id headers, the service
role's transactions and the audit events of the operations."""


from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Final

import structlog

from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.errors import OperationFailed
from neonpro.domain.ports_keys import EncryptedColumn, KeyUpkeep
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel

log = structlog.get_logger("neonpro.services.keys")

ACTOR: Final = SystemActors.CLI
AUDIT_RESOURCE: Final = AuditResource.ENCRYPTION_KEYS
REINDEX_PASSES: Final = 3


class KeyRotationError(OperationFailed):
    """Rotation or re-indexing cannot go on; names table, column and key id, never a value."""


def _by_table(columns: Sequence[EncryptedColumn]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for c in columns:
        if c.column not in out[c.table]:
            out[c.table].append(c.column)
    return dict(out)


def _record(keys: KeyUpkeep, actor: Actor, resource_id: str, details: dict[str, Any]) -> None:
    """A ``KEY_ROTATION`` event on the system chain (ints and strings in ``details``).

    Called from ``finally`` blocks: when another error is already on its way out, a
    failure here is logged rather than raised, so it does not hide that error.
    """
    unwinding = sys.exc_info()[1] is not None
    try:
        with keys.service_uow(actor) as tx:
            tx.audit.record(AuditAction.KEY_ROTATION, AUDIT_RESOURCE, resource_id,
                            risk=RiskLevel.MEDIUM, details=details)
            tx.commit()
    except Exception as exc:
        if not unwinding:
            raise
        log.warning("key_rotation_audit_failed", resource=resource_id,
                    error=type(exc).__name__)
