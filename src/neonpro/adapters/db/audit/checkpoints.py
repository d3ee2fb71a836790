"""Signed checkpoints of the chains' heads: exporting, recording and reading them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import text

from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db.audit.sealing import (
    AUDIT,
    CHAINS,
    CHECKPOINT_RESOURCE,
    SYSTEM_CHAIN,
    seal_pending,
)
from neonpro.adapters.db.database import Database
from neonpro.domain.actors import Actor
from neonpro.domain.audit_chain import (
    sign_head,
)
from neonpro.domain.audit_reports import Checkpoint


def chain_heads(db: Database, actor: Actor) -> list[tuple[str, uuid.UUID, int, bytes]]:
    """(chain, clinic, seq, hash) of every sealed chain's head."""
    with db.transaction("service", None, actor.id, actor.role) as session:  # reads only
        return [(chain, clinic, int(seq), bytes(head))
                for chain in CHAINS for clinic, seq, head in session.execute(text(
                    f"SELECT DISTINCT ON (clinic_id) clinic_id, seq, hash FROM {chain} "  # noqa: S608
                    "WHERE seq IS NOT NULL ORDER BY clinic_id, seq DESC")).all()]


def sign_heads(keyring: KeyRing, heads: Iterable[tuple[str, uuid.UUID, int, bytes]],
               ) -> dict[str, Any]:
    """A checkpoint document (format v2) of ``heads``, signed with the active audit key."""
    key_id, key = keyring.active_audit_key
    return {
        "format": "neonpro-audit-checkpoints-v2",
        "created_at": datetime.now(UTC).isoformat(),
        "key_id": key_id,
        "checkpoints": [{
            "chain": chain, "clinic_id": str(clinic), "seq": seq, "hash": head.hex(),
            "signature": sign_head(key, key_id, chain, clinic, seq, head)}
            for chain, clinic, seq, head in heads],
    }


def export_checkpoints(db: Database, keyring: KeyRing, actor: Actor) -> dict[str, Any]:
    """The signed head of every sealed chain (after sealing what is pending)."""
    seal_pending(db, keyring, actor)
    return sign_heads(keyring, chain_heads(db, actor))


def record_heads(db: Database, keyring: KeyRing, actor: Actor,
                 heads: Iterable[tuple[str, uuid.UUID, int, bytes]]) -> None:
    """Write ``heads`` into the system chain (a VERIFY event), then seal it: deleting a
    whole clinic's chain, or its tail up to there, now breaks ``verify`` even without a
    checkpoint file."""
    by_chain: dict[str, dict[str, list[Any]]] = {}
    for chain, clinic, seq, head in heads:
        if (chain, clinic) != (AUDIT, SYSTEM_CHAIN):  # its own head moves as it records
            by_chain.setdefault(chain, {})[str(clinic)] = [seq, head.hex()]
    if not by_chain:
        return
    with db.transaction("service", None, actor.id, actor.role) as session:
        session.execute(text(
            # the system chain named (a distributed audit_events is routed by it)
            "INSERT INTO audit_events (clinic_id, action, resource_type, details) "
            "VALUES (:c, 'VERIFY', :r, CAST(:d AS jsonb))"),
            {"c": SYSTEM_CHAIN, "r": CHECKPOINT_RESOURCE, "d": json.dumps({"heads": by_chain})})
        session.commit()
    seal_pending(db, keyring, actor, SYSTEM_CHAIN)


def load_checkpoints(data: Any) -> list[Checkpoint]:
    """Checkpoints of a file's JSON (format v1 or v2) or of one syslog/HTTP record."""
    if isinstance(data, dict) and data.get("format") == "neonpro-audit-checkpoints-v1":
        return [Checkpoint(uuid.UUID(c["clinic_id"]), int(c["seq"]), str(c["hash"]),
                           str(c["signature"])) for c in data["checkpoints"]]
    if isinstance(data, dict) and data.get("format") == "neonpro-audit-checkpoints-v2":
        key_id = str(data["key_id"])
        return [Checkpoint(uuid.UUID(c["clinic_id"]), int(c["seq"]), str(c["hash"]),
                           str(c["signature"]), str(c["chain"]), key_id)
                for c in data["checkpoints"]]
    if isinstance(data, dict) and {"chain", "clinic_id", "seq", "hash", "signature",
                                   "key_id"} <= set(data):
        return [Checkpoint(uuid.UUID(data["clinic_id"]), int(data["seq"]), str(data["hash"]),
                           str(data["signature"]), str(data["chain"]), str(data["key_id"]))]
    msg = "not a neonpro checkpoint file"
    raise ValueError(msg)


LINE_MARK: Final = "neonpro-checkpoint "


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """Every checkpoint in ``path``: a checkpoint file, a directory of them, or lines
    carrying ``neonpro-checkpoint {...}`` (as syslog receives them)."""
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    out: list[Checkpoint] = []
    for file in files:
        content = file.read_text(encoding="utf-8")
        if LINE_MARK in content and not content.lstrip().startswith("{"):
            decoder = json.JSONDecoder()
            for line in content.splitlines():
                if LINE_MARK in line:  # syslog adds a priority before, a NUL after
                    record, _end = decoder.raw_decode(line.split(LINE_MARK, 1)[1])
                    out += load_checkpoints(record)
            continue
        out += load_checkpoints(json.loads(content))
    return out
