"""Sealing and verifying the audit chains, and signed checkpoints of their heads.

Sealing runs as the service role through ``neonpro_audit_seal`` (short transactions,
one clinic at a time). Verification reads every sealed event with the service role and
recomputes each hash in Python from the stored fields (``domain.audit_chain``), so a
change made in the database by anyone, owner included, shows up as a broken link.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads
from sqlalchemy import text

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
                  checkpoint_key: bytes | None = None) -> list[ChainReport]:
    """Recompute every clinic's chain (or one); each report names its first broken link."""
    reports: list[ChainReport] = []
    with _raw(db) as conn:
        _begin(conn, db, actor)
        where, params = ("WHERE clinic_id = %(c)s", {"c": clinic_id}) if clinic_id else ("", {})
        clinics = [r[0] for r in conn.execute(
            f"SELECT DISTINCT clinic_id FROM audit_events {where} ORDER BY 1", params)]  # noqa: S608
        if clinic_id and clinic_id not in clinics:
            clinics.append(clinic_id)
        reports.extend(_verify_one(conn, clinic) for clinic in clinics)
        conn.rollback()
    _apply_checkpoints(reports, checkpoints or [], checkpoint_key, clinic_id)
    return reports


def _verify_one(conn: psycopg.Connection[Any], clinic: uuid.UUID) -> ChainReport:
    report = ChainReport(clinic)
    cut_row = conn.execute(
        "SELECT seq, hash FROM audit_chain_cuts WHERE clinic_id = %s ORDER BY seq DESC LIMIT 1",
        (clinic,)).fetchone()
    cut = _Cut(cut_row[0], bytes(cut_row[1])) if cut_row else None
    report.unsealed = conn.execute(
        "SELECT count(*) FROM audit_events WHERE clinic_id = %s AND seq IS NULL", (clinic,)
    ).fetchone()[0]  # type: ignore[index]
    with conn.cursor(name=f"chain_{clinic.hex}") as cursor:
        cursor.itersize = 5000
        cursor.execute(
            f"SELECT {_COLUMNS} FROM audit_events WHERE clinic_id = %s AND seq IS NOT NULL "  # noqa: S608
            "ORDER BY seq", (clinic,))
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
