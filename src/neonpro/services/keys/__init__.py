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

Nothing here ever logs, prints or raises with a plaintext value or key materi

In parts: :mod:`.common`, :mod:`.status`, :mod:`.rotation`, :mod:`.reindex`; they work
over the ports of ``domain/ports_keys.py`` (the SQL is ``adapters/db/keys_sql.py``).
"""

from __future__ import annotations

from neonpro.domain.ports_keys import (
    MALFORMED,
    EncryptedColumn,
    IndexConflict,
    RowRef,
)
from neonpro.services.key_batches import DEFAULT_BATCH, MAX_BATCH
from neonpro.services.keys.common import (
    ACTOR,
    AUDIT_RESOURCE,
    REINDEX_PASSES,
    KeyRotationError,
)
from neonpro.services.keys.reindex import (
    ReindexReport,
    blind_indexed_patients,
    promote_blind_key,
    reindex_blind,
)
from neonpro.services.keys.rotation import (  # noqa: F401  (tests)
    ColumnRotation,
    OnSelected,
    Progress,
    RotationReport,
    _reencrypt,
    _tally,
    ensure_known_keys,
    remove_key,
    rotate,
)
from neonpro.services.keys.status import (
    ColumnStatus,
    KeyStatus,
    key_status,
)

__all__ = [
    "ACTOR",
    "AUDIT_RESOURCE",
    "DEFAULT_BATCH",
    "MALFORMED",
    "MAX_BATCH",
    "REINDEX_PASSES",
    "ColumnRotation",
    "ColumnStatus",
    "EncryptedColumn",
    "IndexConflict",
    "KeyRotationError",
    "KeyStatus",
    "OnSelected",
    "Progress",
    "ReindexReport",
    "RotationReport",
    "RowRef",
    "blind_indexed_patients",
    "ensure_known_keys",
    "key_status",
    "promote_blind_key",
    "reindex_blind",
    "remove_key",
    "rotate",
]
