"""Retention pruning: archiving and deleting sealed events below a signed cut."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import uuid
from dataclasses import asdict
from datetime import date, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text

from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db.audit.sealing import (
    _COLUMNS,
    AUDIT,
    seal_pending,
    sign_cut,
)
from neonpro.adapters.db.audit.verify import (
    _begin,
    _raw,
)
from neonpro.adapters.db.database import Database
from neonpro.domain.actors import Actor
from neonpro.domain.audit_chain import (
    ChainEvent,
)
from neonpro.domain.audit_reports import PruneResult


def _prunable_upto(conn: psycopg.Connection[Any], clinic: uuid.UUID) -> int | None:
    """The last seq of the longest sealed prefix whose events are all past retention."""
    row = conn.execute(
        "SELECT min(seq) FROM audit_events WHERE clinic_id = %s AND "
        "(seq IS NULL OR retain_until >= current_date)", (clinic,)).fetchone()
    first_kept = row[0] if row else None
    head = conn.execute("SELECT max(seq) FROM audit_events WHERE clinic_id = %s",
                        (clinic,)).fetchone()
    last = head[0] if head else None
    if last is None:
        return None
    upto = (first_kept - 1) if first_kept is not None else last
    low = conn.execute("SELECT min(seq) FROM audit_events WHERE clinic_id = %s "
                       "AND seq IS NOT NULL", (clinic,)).fetchone()
    return upto if low and low[0] is not None and upto >= low[0] else None


def prune_expired(db: Database, keyring: KeyRing, actor: Actor, archive_dir: Path,
                  clinic_id: uuid.UUID | None = None, *, dry_run: bool = False,
                  ) -> list[PruneResult]:
    """Archive and delete each chain's expired prefix, leaving a signed cut behind it.

    Segments are pruned whole, from the start of a chain, up to the first event still
    within its retention; the archive (gzipped JSON lines with every field and hash) is
    written and synced before anything is deleted.
    """
    seal_pending(db, keyring, actor, clinic_id)
    results: list[PruneResult] = []
    with _raw(db) as conn:
        _begin(conn, actor)
        clinics = [clinic_id] if clinic_id else [r[0] for r in conn.execute(
            "SELECT DISTINCT clinic_id FROM audit_events WHERE seq IS NOT NULL")]
        plan = [(c, _prunable_upto(conn, c)) for c in clinics]
        conn.rollback()
    for clinic, upto in plan:
        if upto is None:
            continue
        if dry_run:
            results.append(PruneResult(clinic, upto, -1, "", ""))
            continue
        results.append(_prune_one(db, keyring, actor, archive_dir, clinic, upto))
    return results


def _prune_one(db: Database, keyring: KeyRing, actor: Actor, archive_dir: Path,
               clinic: uuid.UUID, upto: int) -> PruneResult:
    archive_dir.mkdir(parents=True, exist_ok=True)
    path = archive_dir / f"audit-{clinic}-upto-{upto}.jsonl.gz"
    digest = hashlib.sha256()
    head = b""
    with _raw(db) as conn:
        _begin(conn, actor)
        with conn.cursor(name="archive") as cursor, gzip.open(path, "wb") as sink:
            cursor.execute(f"SELECT {_COLUMNS[AUDIT]} FROM audit_events WHERE clinic_id = %s "  # noqa: S608
                           "AND seq <= %s ORDER BY seq", (clinic, upto))
            for row in cursor:
                event = ChainEvent(*row)
                record = {k: _jsonable(v) for k, v in asdict(event).items()}
                sink.write((json.dumps(record, sort_keys=True) + "\n").encode())
                head = bytes(event.hash or b"")
        conn.rollback()
    with path.open("rb") as stored:
        for chunk in iter(lambda: stored.read(1 << 20), b""):
            digest.update(chunk)
        os.fsync(stored.fileno())
    archive_sha = digest.hexdigest()
    key_id, key = keyring.active_audit_key
    signature = sign_cut(key, clinic, upto, head, archive_sha)
    # the clinic's transaction: the function writes the RETENTION event to its chain
    with db.transaction("service", clinic, actor.id, actor.role) as session:
        pruned = session.execute(text(
            "SELECT neonpro_audit_prune(:c, :s, :h, :a, :kid, :sig)"), {
            "c": clinic, "s": upto, "h": head, "a": archive_sha, "kid": key_id,
            "sig": signature}).scalar_one()
        session.commit()
    return PruneResult(clinic, upto, int(pruned), str(path), archive_sha)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID | datetime | date):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    if value is not None and not isinstance(value, str | int | float | bool | dict | list):
        return str(value)
    return value
