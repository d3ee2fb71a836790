"""Sealing and verifying the chains, signed checkpoints of their heads, retention pruning.

Two chains per clinic: the audit trail (``audit_events``) and the erasure ledger
(``erasure_ledger``). Both are sealed here, by the process that holds the audit keys: it
reads a chain's head and its unsealed entries under the chain's lock
(``neonpro_chain_head``), computes each entry's HMAC with the active audit key, and writes
seq, prev_hash, hash and key id through ``neonpro_chain_seal``, which accepts only the next
sequence numbers after the head. The database never sees the key.

Verification reads every sealed entry with the service role and recomputes each HMAC from
the stored fields (``audit_text``), so a change made in the database by anyone without
the key, owner and superuser included, shows up as a broken link; signed checkpoints
(files outside the database, and heads recorded in the system chain) bind each chain's
hash at their sequence numbers, against a rewrite by someone who holds the key, and
against deleted tails and whole chains.

In parts: :mod:`.sealing`, :mod:`.verify`, :mod:`.checkpoints`, :mod:`.pruning`.
"""

from __future__ import annotations

from neonpro.adapters.db.audit.checkpoints import (
    LINE_MARK,
    chain_heads,
    export_checkpoints,
    load_checkpoints,
    read_checkpoints,
    record_heads,
    sign_heads,
)
from neonpro.adapters.db.audit.pruning import prune_expired
from neonpro.adapters.db.audit.sealing import (  # noqa: F401  (bench/audit.py reads them)
    _COLUMNS,
    _TEXT_SETTINGS,
    AUDIT,
    CHAINS,
    CHECKPOINT_RESOURCE,
    LEDGER,
    SEAL_BATCH,
    SYSTEM_CHAIN,
    hashers,
    seal_hashes,
    seal_pending,
    sign_cut,
)
from neonpro.adapters.db.audit.verify import verify_chains

# the reports are the domain's (re-exported: adapters and tests name them from here)
from neonpro.domain.audit_reports import ChainReport, Checkpoint, PruneResult

__all__ = [
    "AUDIT",
    "CHAINS",
    "CHECKPOINT_RESOURCE",
    "LEDGER",
    "LINE_MARK",
    "SEAL_BATCH",
    "SYSTEM_CHAIN",
    "ChainReport",
    "Checkpoint",
    "PruneResult",
    "chain_heads",
    "export_checkpoints",
    "hashers",
    "load_checkpoints",
    "prune_expired",
    "read_checkpoints",
    "record_heads",
    "seal_hashes",
    "seal_pending",
    "sign_cut",
    "sign_heads",
    "verify_chains",
]
