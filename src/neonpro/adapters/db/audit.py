"""Sealing and verifying the audit chains, and signed checkpoints of their heads.

Sealing runs as the service role through ``neonpro_audit_seal`` (short transactions,
one clinic at a time). Verification reads every sealed event with the service role and
recomputes each hash in Python from the stored fields (``domain.audit_chain``), so a
change made in the database by anyone, owner included, shows up as a broken link.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads
from sqlalchemy import text

from neonpro.adapters.db.audit_text import check_text_chain, prefetched, text_mode
from neonpro.adapters.db.database import Database, context_params
from neonpro.domain.actors import Actor
from neonpro.domain.audit_chain import (
    ChainEvent,
    checkpoint_valid,
    event_hash,
    sign_checkpoint,
)

SEAL_BATCH = 5000
_COLUMNS = (
    "clinic_id, seq, id, occurred_at, actor_id, actor_role, action, resource_type, "
    "resource_id, patient_ref, status, risk_level, ip_address, user_agent, session_id, "
    "request_id, details, retain_until, prev_hash, hash"
)


def seal_pending(db: Database, actor: Actor, clinic_id: uuid.UUID | None = None) -> int:
    """Seal every unsealed event (of one clinic, or all); returns how many were sealed."""
    total = 0
    with db.service_session(actor.id, actor.role) as session:
        present = session.execute(text(
            "SELECT to_regprocedure('neonpro_audit_seal(uuid,integer)') IS NOT NULL")).scalar()
        if not present:  # a database not migrated yet has nothing to seal
            return 0
        clinics = [clinic_id] if clinic_id else list(session.execute(
            text("SELECT neonpro_audit_unsealed_clinics()")).scalars())
    for clinic in clinics:
        while True:
            with db.service_session(actor.id, actor.role) as session:
                sealed = session.execute(text("SELECT neonpro_audit_seal(:c, :n)"),
                                         {"c": clinic, "n": SEAL_BATCH}).scalar_one()
            total += int(sealed)
            if sealed < SEAL_BATCH:
                break
    return total


@dataclass
class ChainReport:
    clinic_id: uuid.UUID
    sealed: int = 0
    head_seq: int = 0
    head_hash: str | None = None
    unsealed: int = 0
    first_seq: int = 1
    broken_at: int | None = None
    reason: str | None = None
    checkpoint: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken_at is None and self.reason is None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["clinic_id"] = str(self.clinic_id)
        out["ok"] = self.ok
        return out


@dataclass
class Checkpoint:
    clinic_id: uuid.UUID
    seq: int
    hash: str
    signature: str


@dataclass
class _Cut:
    seq: int
    hash: bytes


def _raw(db: Database) -> psycopg.Connection[Any]:
    url = db.engine("service").url.set(drivername="postgresql")
    conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=False)
    set_json_loads(partial(json.loads, parse_float=Decimal), conn)
    return conn


def _begin(conn: psycopg.Connection[Any], db: Database, actor: Actor) -> None:
    params = context_params(db.roles.service, None, actor.id, actor.role)
    conn.execute(
        "SELECT set_config('role', %(role)s, true), set_config('app.actor_id', %(actor_id)s, "
        "true), set_config('app.actor_role', %(actor_role)s, true)", params,
    )


def _check_chain(report: ChainReport, rows: Iterable[tuple[Any, ...]], cut: _Cut | None) -> None:
    expected_seq = cut.seq + 1 if cut else 1
    prev: bytes | None = cut.hash if cut else None
    report.first_seq = expected_seq
    for row in rows:
        event = ChainEvent(*row)
        if event.seq != expected_seq:
            report.broken_at = expected_seq
            report.reason = (f"missing event: expected seq {expected_seq}, found {event.seq} "
                             "(deleted or renumbered)")
            return
        stored_prev = None if event.prev_hash is None else bytes(event.prev_hash)
        if stored_prev != prev:
            report.broken_at = event.seq
            report.reason = "prev_hash does not match the previous event (inserted or reordered)"
            return
        try:
            computed = event_hash(event, prev)
        except TypeError:
            computed = b""
        if event.hash is None or computed != bytes(event.hash):
            report.broken_at = event.seq
            report.reason = "hash does not match the event's content (edited)"
            return
        prev = computed
        report.sealed += 1
        report.head_seq = event.seq
        expected_seq += 1
    report.head_hash = prev.hex() if prev else None


def verify_chains(db: Database, actor: Actor, clinic_id: uuid.UUID | None = None,
                  checkpoints: list[Checkpoint] | None = None,
                  checkpoint_key: bytes | None = None, *,
                  reference: bool = False) -> list[ChainReport]:
    """Recompute every clinic's chain (or one); each report names its first broken link.

    The fast path reads text columns (``audit_text``); ``reference=True`` recomputes from
    typed values through ``domain.audit_chain`` (slower; tests compare the two).
    """
    reports: list[ChainReport] = []
    with _raw(db) as conn:
        _begin(conn, db, actor)
        if not reference:
            text_mode(conn)
        where, params = ("WHERE clinic_id = %(c)s", {"c": clinic_id}) if clinic_id else ("", {})
        clinics = [uuid.UUID(str(r[0])) for r in conn.execute(
            f"SELECT DISTINCT clinic_id FROM audit_events {where} ORDER BY 1", params)]  # noqa: S608
        if clinic_id and clinic_id not in clinics:
            clinics.append(clinic_id)
        reports.extend(_verify_one(conn, clinic, checkpoint_key, fast=not reference)
                       for clinic in clinics)
        conn.rollback()
    _apply_checkpoints(reports, checkpoints or [], checkpoint_key, clinic_id)
    return reports


def _verify_one(conn: psycopg.Connection[Any], clinic: uuid.UUID,
                key: bytes | None = None, *, fast: bool = False) -> ChainReport:
    report = ChainReport(clinic)
    cut_row = conn.execute(
        "SELECT seq, hash, archive_sha256, signature FROM audit_chain_cuts WHERE clinic_id = %s "
        "ORDER BY seq DESC LIMIT 1", (clinic,)).fetchone()
    if cut_row and fast:  # text mode: bytea arrives as '\\x...'
        cut_row = (cut_row[0], bytes.fromhex(cut_row[1][2:]), cut_row[2], cut_row[3])
    cut = _Cut(cut_row[0], bytes(cut_row[1])) if cut_row else None
    if cut_row and key is not None and not hmac.compare_digest(
            sign_cut(key, clinic, cut_row[0], bytes(cut_row[1]), cut_row[2]), cut_row[3]):
        report.broken_at = cut_row[0]
        report.reason = "retention cut signature invalid (the cut was forged or altered)"
        return report
    report.unsealed = conn.execute(
        "SELECT count(*) FROM audit_events WHERE clinic_id = %s AND seq IS NULL", (clinic,)
    ).fetchone()[0]  # type: ignore[index]
    with conn.cursor(name=f"chain_{clinic.hex}") as cursor:
        cursor.itersize = 5000
        cursor.execute(
            f"SELECT {_COLUMNS} FROM audit_events WHERE clinic_id = %s AND seq IS NOT NULL "  # noqa: S608
            "ORDER BY seq", (clinic,))
        if fast:
            check_text_chain(report, prefetched(cursor, 5000),
                             (cut.seq, cut.hash.hex()) if cut else None)
        else:
            _check_chain(report, _rows(cursor), cut)
    return report


def _rows(cursor: psycopg.ServerCursor[Any]) -> Iterator[tuple[Any, ...]]:
    yield from cursor


def _apply_checkpoints(reports: list[ChainReport], checkpoints: list[Checkpoint],
                       key: bytes | None, only: uuid.UUID | None) -> None:
    by_clinic = {r.clinic_id: r for r in reports}
    for cp in checkpoints:
        if only is not None and cp.clinic_id != only:
            continue
        report = by_clinic.get(cp.clinic_id)
        if report is None:
            report = ChainReport(cp.clinic_id)
            reports.append(report)
            by_clinic[cp.clinic_id] = report
        if key is not None and not checkpoint_valid(key, cp.clinic_id, cp.seq,
                                                    bytes.fromhex(cp.hash), cp.signature):
            report.reason = report.reason or "checkpoint signature invalid (forged checkpoint file)"
            report.checkpoint = "invalid signature"
            continue
        if report.head_seq < cp.seq and report.broken_at is None:
            report.broken_at = report.head_seq + 1
            report.reason = (f"chain ends at seq {report.head_seq} but a signed checkpoint "
                             f"covers seq {cp.seq}: the tail was truncated")
            report.checkpoint = "truncated"
        elif report.ok:
            report.checkpoint = "matches"


def export_checkpoints(db: Database, actor: Actor, key: bytes) -> dict[str, Any]:
    """The signed head of every sealed chain (after sealing what is pending)."""
    seal_pending(db, actor)
    heads = []
    with db.service_session(actor.id, actor.role) as session:
        rows = session.execute(text(
            "SELECT DISTINCT ON (clinic_id) clinic_id, seq, hash FROM audit_events "
            "WHERE seq IS NOT NULL ORDER BY clinic_id, seq DESC")).all()
    for clinic, seq, stored in rows:
        head = bytes(stored)
        heads.append(Checkpoint(clinic, seq, head.hex(), sign_checkpoint(key, clinic, seq, head)))
    return {
        "format": "neonpro-audit-checkpoints-v1",
        "created_at": datetime.now(UTC).isoformat(),
        "checkpoints": [{**asdict(h), "clinic_id": str(h.clinic_id)} for h in heads],
    }


def load_checkpoints(data: dict[str, Any]) -> list[Checkpoint]:
    if data.get("format") != "neonpro-audit-checkpoints-v1":
        msg = "not a neonpro checkpoint file"
        raise ValueError(msg)
    return [Checkpoint(uuid.UUID(c["clinic_id"]), int(c["seq"]), str(c["hash"]),
                       str(c["signature"])) for c in data["checkpoints"]]


# ----------------------------------------------------------------- retention pruning
def sign_cut(key: bytes, clinic_id: uuid.UUID, seq: int, head: bytes, archive_sha256: str) -> str:
    message = f"neonpro-cut-v1|{clinic_id}|{seq}|{head.hex()}|{archive_sha256}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


@dataclass
class PruneResult:
    clinic_id: uuid.UUID
    upto_seq: int
    pruned: int
    archive: str
    archive_sha256: str


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


def prune_expired(db: Database, actor: Actor, key: bytes, archive_dir: Path,
                  clinic_id: uuid.UUID | None = None, *, dry_run: bool = False,
                  ) -> list[PruneResult]:
    """Archive and delete each chain's expired prefix, leaving a signed cut behind it.

    Segments are pruned whole, from the start of a chain, up to the first event still
    within its retention; the archive (gzipped JSON lines with every field and hash) is
    written and synced before anything is deleted.
    """
    seal_pending(db, actor, clinic_id)
    results: list[PruneResult] = []
    with _raw(db) as conn:
        _begin(conn, db, actor)
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
        results.append(_prune_one(db, actor, key, archive_dir, clinic, upto))
    return results


def _prune_one(db: Database, actor: Actor, key: bytes, archive_dir: Path, clinic: uuid.UUID,
               upto: int) -> PruneResult:
    archive_dir.mkdir(parents=True, exist_ok=True)
    path = archive_dir / f"audit-{clinic}-upto-{upto}.jsonl.gz"
    digest = hashlib.sha256()
    head = b""
    with _raw(db) as conn:
        _begin(conn, db, actor)
        with conn.cursor(name="archive") as cursor, gzip.open(path, "wb") as sink:
            cursor.execute(f"SELECT {_COLUMNS} FROM audit_events WHERE clinic_id = %s "  # noqa: S608
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
    signature = sign_cut(key, clinic, upto, head, archive_sha)
    with db.service_session(actor.id, actor.role) as session:
        pruned = session.execute(text("SELECT neonpro_audit_prune(:c, :s, :h, :a, :sig)"), {
            "c": clinic, "s": upto, "h": head, "a": archive_sha, "sig": signature,
        }).scalar_one()
        session.execute(text(
            "INSERT INTO audit_events (clinic_id, actor_id, actor_role, action, resource_type, "
            "details) VALUES (:c, :a, :r, 'RETENTION', 'audit_events', CAST(:d AS jsonb))"),
            {"c": clinic, "a": actor.id, "r": actor.role, "d": json.dumps(
                {"pruned": int(pruned), "upto_seq": upto, "archive_sha256": archive_sha})})
    return PruneResult(clinic, upto, int(pruned), str(path), archive_sha)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID | datetime | date):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    if value is not None and not isinstance(value, str | int | float | bool | dict | list):
        return str(value)
    return value
