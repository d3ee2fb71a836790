"""The chains, their columns and order, and sealing: hashing unsealed entries with the
audit key and writing them through ``neonpro_chain_seal``."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import text

from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db.audit_text import (
    LEDGER_SPECS,
    audit_v2,
    text_mode,
)
from neonpro.adapters.db.database import Database
from neonpro.domain.actors import Actor
from neonpro.domain.audit_chain import (
    Hmac,
)
from neonpro.domain.vocabulary import AuditResource

AUDIT: Final = "audit_events"
LEDGER: Final = "erasure_ledger"
# every chained table: the audit trail, then the ledgers (audit_text.LEDGER_SPECS)
CHAINS: Final = (AUDIT, *LEDGER_SPECS)
SYSTEM_CHAIN: Final = uuid.UUID(int=0)
SEAL_BATCH = 5000
# the in-database checkpoint: a VERIFY event of the system chain naming every chain head
CHECKPOINT_RESOURCE: Final = AuditResource.AUDIT_CHECKPOINT
_COLUMNS = {
    AUDIT: ("clinic_id, seq, id, occurred_at, actor_id, actor_role, action, resource_type, "
            "resource_id, patient_ref, status, risk_level, ip_address, user_agent, session_id, "
            "request_id, details, retain_until, prev_hash, hash, key_id"),
    **{name: spec.columns for name, spec in LEDGER_SPECS.items()},
}
_ORDER = {AUDIT: "occurred_at, id", **{n: s.order for n, s in LEDGER_SPECS.items()}}
# the chains whose reference (typed) verification lives in domain.audit_chain; the others
# have one encoding, from text
_TYPED = (AUDIT, LEDGER)
_TEXT_SETTINGS = ("SELECT set_config('TimeZone', 'UTC', true), "
                  "set_config('DateStyle', 'ISO, YMD', true), "
                  "set_config('bytea_output', 'hex', true)")


def hashers(keyring: KeyRing) -> dict[str, Hmac]:
    return {kid: Hmac(key) for kid, key in keyring.audit_keys.items()}


# ------------------------------------------------------------------------------- sealing
def seal_pending(db: Database, keyring: KeyRing, actor: Actor,
                 clinic_id: uuid.UUID | None = None) -> int:
    """Seal every unsealed entry of both chains (of one clinic, or all); returns how many."""
    with db.transaction("service", None, actor.id, actor.role) as session:  # reads only
        present = session.execute(text(
            "SELECT to_regprocedure('neonpro_chain_seal(text,uuid,bigint,bytea,text,uuid[],"
            "bytea[])') IS NOT NULL")).scalar()
        if not present:  # a database not migrated yet has nothing to seal
            return 0
        work = [(chain, clinic_id) for chain in CHAINS] if clinic_id else [
            (chain, c) for chain in CHAINS for c in session.execute(text(
                f"SELECT DISTINCT clinic_id FROM {chain} WHERE seq IS NULL")).scalars()]  # noqa: S608
    key_id, key = keyring.active_audit_key
    hasher = Hmac(key)
    total = 0
    for chain, clinic in work:
        while True:
            sealed = _seal_batch(db, actor, chain, clinic, key_id, hasher)
            total += sealed
            if sealed < SEAL_BATCH:
                break
    return total


def _seal_batch(db: Database, actor: Actor, chain: str, clinic: uuid.UUID, key_id: str,
                hasher: Hmac) -> int:
    """One short transaction: lock the chain, read its head and next unsealed entries,
    hash them, write the seals."""
    build = audit_v2 if chain == AUDIT else LEDGER_SPECS[chain].canonical
    with db.transaction("service", None, actor.id, actor.role) as session:
        raw = session.connection().connection.driver_connection
        seq, head = session.execute(text("SELECT seq, hash FROM neonpro_chain_head(:k, :c)"),
                                    {"k": chain, "c": clinic}).one()
        after_seq, after_hash = int(seq), None if head is None else bytes(head)
        with raw.cursor() as cur:
            text_mode(cur)
            cur.execute(f"SELECT {_COLUMNS[chain]} FROM {chain} WHERE clinic_id = %s "  # noqa: S608
                        f"AND seq IS NULL ORDER BY {_ORDER[chain]} LIMIT %s",
                        (clinic, SEAL_BATCH))
            rows = cur.fetchall()
        if not rows:
            return 0
        ids, hashes = seal_hashes(rows, build, key_id, hasher, after_seq, after_hash)
        session.execute(text(
            "SELECT neonpro_chain_seal(:k, :c, :s, :h, :kid, CAST(:ids AS uuid[]), :hashes)"),
            {"k": chain, "c": clinic, "s": after_seq, "h": after_hash, "kid": key_id,
             "ids": ids, "hashes": hashes})
        session.commit()
    return len(rows)


def seal_hashes(rows: list[tuple[Any, ...]], build: Callable[..., str], key_id: str,
                hasher: Hmac, after_seq: int, after_hash: bytes | None,
                ) -> tuple[list[uuid.UUID], list[bytes]]:
    """The ids and chained hashes of ``rows`` (text rows, in sealing order) after the head
    ``(after_seq, after_hash)``."""
    prev = None if after_hash is None else after_hash.hex()
    ids, hashes = [], []
    for n, row in enumerate(rows, start=after_seq + 1):
        digest = hasher.digest(build(row, key_id, str(n), prev).encode())
        ids.append(uuid.UUID(row[2]))
        hashes.append(digest)
        prev = digest.hex()
    return ids, hashes


def sign_cut(key: bytes, clinic_id: uuid.UUID, seq: int, head: bytes, archive_sha256: str) -> str:
    message = f"neonpro-cut-v1|{clinic_id}|{seq}|{head.hex()}|{archive_sha256}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()
