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
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any, Final

import psycopg
from psycopg.types.json import set_json_loads
from sqlalchemy import text

from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db.audit_text import (
    LEDGER_SPECS,
    ChainRules,
    audit_v2,
    check_text_chain,
    prefetched,
    text_hashes,
    text_loaders,
    text_mode,
)
from neonpro.adapters.db.database import Database
from neonpro.domain.actors import Actor
from neonpro.domain.audit_chain import (
    ChainEvent,
    Hmac,
    LedgerEntry,
    checkpoint_valid,
    event_hash,
    head_valid,
    keyed_event_hash,
    keyed_ledger_hash,
    sign_head,
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
    with db.service_session(actor.id, actor.role) as session:
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
    with db.service_session(actor.id, actor.role) as session:
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


# --------------------------------------------------------------------------- reporting
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
    chain: str = AUDIT

    @property
    def ok(self) -> bool:
        return self.broken_at is None and self.reason is None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["clinic_id"] = str(self.clinic_id)
        out["ok"] = self.ok
        return out


@dataclass(frozen=True)
class Checkpoint:
    """One signed chain head. ``key_id`` None: a file of format v1 (audit chains only,
    signed with the key of before audit key ids)."""

    clinic_id: uuid.UUID
    seq: int
    hash: str
    signature: str
    chain: str = AUDIT
    key_id: str | None = None

    def valid(self, keyring: KeyRing) -> bool:
        head = bytes.fromhex(self.hash)
        if self.key_id is None:
            return self.chain == AUDIT and checkpoint_valid(
                keyring.legacy_audit_key, self.clinic_id, self.seq, head, self.signature)
        key = keyring.audit_keys.get(self.key_id)
        return key is not None and head_valid(key, self.key_id, self.chain, self.clinic_id,
                                              self.seq, head, self.signature)


@dataclass
class _Known:
    """What a verification knows beyond the chains: cuts, anchors, vouched heads."""

    cuts: dict[uuid.UUID, tuple[int, bytes, str, str, str | None]] = field(default_factory=dict)
    anchors: dict[uuid.UUID, tuple[int, bytes, str, str]] = field(default_factory=dict)
    # (chain, clinic) -> seq -> (hash hex, who vouches)
    wanted: dict[tuple[str, uuid.UUID], dict[int, tuple[str, str]]] = field(
        default_factory=dict)
    # chains whose clinic still holds the rows that made their entries
    must_exist: set[tuple[str, uuid.UUID]] = field(default_factory=set)

    def vouch(self, chain: str, clinic: uuid.UUID, seq: int, head: str, who: str) -> None:
        self.wanted.setdefault((chain, clinic), {})[seq] = (head, who)


def _raw(db: Database) -> psycopg.Connection[Any]:
    url = db.engine("service").url.set(drivername="postgresql")
    conn = psycopg.connect(url.render_as_string(hide_password=False), autocommit=False)
    set_json_loads(partial(json.loads, parse_float=Decimal), conn)
    return conn


def _begin(conn: psycopg.Connection[Any], actor: Actor) -> None:
    conn.execute("SELECT set_config('app.actor_id', %s, true), "
                 "set_config('app.actor_role', %s, true)", (str(actor.id), actor.role))


def _bytes(value: Any, fast: bool) -> bytes:  # noqa: FBT001
    return bytes.fromhex(value[2:]) if fast else bytes(value)


def verify_chains(db: Database, actor: Actor, keyring: KeyRing,
                  clinic_id: uuid.UUID | None = None,
                  checkpoints: list[Checkpoint] | None = None, *,
                  reference: bool = False) -> list[ChainReport]:
    """Recompute every clinic's chains (or one clinic's); each report names its chain's
    first broken link.

    The system chain is read first whatever ``clinic_id``: the heads it recorded at each
    in-database checkpoint must still be there, with their hashes, in every other chain.
    Signed ``checkpoints`` (files) bind the same way. The fast path reads text columns
    (``audit_text``); ``reference=True`` recomputes from typed values through
    ``domain.audit_chain`` (slower; tests compare the two).
    """
    known = _Known()
    reports: list[ChainReport] = []
    bad_files = _file_checkpoints(checkpoints or [], keyring, known, clinic_id)
    with _raw(db) as conn:
        _begin(conn, actor)
        fast = not reference
        if fast:
            text_mode(conn)
        else:  # the output settings, for the chains read as text all the same
            conn.execute(_TEXT_SETTINGS)
        _read_cuts_and_anchors(conn, known, fast)
        known.must_exist = _must_exist(conn, clinic_id)
        # the system chain first: the heads it recorded vouch for the other chains
        recorded: dict[tuple[str, uuid.UUID], tuple[int, str]] = {}
        system = _verify_one(conn, keyring, AUDIT, SYSTEM_CHAIN, known, fast=fast,
                             recorded=recorded)
        for (chain, clinic), (seq, head) in recorded.items():
            known.vouch(chain, clinic, seq, head, "the checkpoint recorded in the system chain")
        targets = _targets(conn, known, clinic_id)
        if clinic_id is None or clinic_id == SYSTEM_CHAIN:
            reports.append(system)
        reports.extend(_verify_one(conn, keyring, chain, clinic, known, fast=fast)
                       for chain, clinic in targets if (chain, clinic) != (AUDIT, SYSTEM_CHAIN))
        conn.rollback()
    for cp in bad_files:
        report = next((r for r in reports if (r.chain, r.clinic_id) == (cp.chain, cp.clinic_id)),
                      None)
        if report is None:
            report = ChainReport(cp.clinic_id, chain=cp.chain)
            reports.append(report)
        report.reason = report.reason or "checkpoint signature invalid (forged checkpoint file)"
        report.checkpoint = "invalid signature"
    return reports


def _file_checkpoints(checkpoints: list[Checkpoint], keyring: KeyRing, known: _Known,
                      only: uuid.UUID | None) -> list[Checkpoint]:
    """Vouch for every validly signed head of the files; return the forged ones."""
    bad = []
    for cp in checkpoints:
        if only is not None and cp.clinic_id not in (only, SYSTEM_CHAIN):
            continue
        if not cp.valid(keyring):
            bad.append(cp)
            continue
        known.vouch(cp.chain, cp.clinic_id, cp.seq, cp.hash, "a signed checkpoint")
    return bad


def _read_cuts_and_anchors(conn: psycopg.Connection[Any], known: _Known, fast: bool) -> None:  # noqa: FBT001
    for clinic, seq, head, archive, signature, key_id in conn.execute(
            "SELECT DISTINCT ON (clinic_id) clinic_id, seq, hash, archive_sha256, signature, "
            "key_id FROM audit_chain_cuts ORDER BY clinic_id, seq DESC"):
        known.cuts[uuid.UUID(str(clinic))] = (seq, _bytes(head, fast), archive, signature, key_id)
    for clinic, seq, head, key_id, signature in conn.execute(
            "SELECT clinic_id, seq, hash, key_id, signature FROM audit_chain_anchors"):
        known.anchors[uuid.UUID(str(clinic))] = (seq, _bytes(head, fast), key_id, signature)


# Clinics whose chain cannot be empty: the rows that made its entries are still there. Every
# audited row change wrote an event; an erased patient has a ledger entry; a consent status
# other than pending summarises consent rows (consent_sql.py).
_MUST_EXIST = {
    AUDIT: "SELECT DISTINCT clinic_id FROM patients UNION SELECT DISTINCT clinic_id "
           "FROM professionals",
    LEDGER: "SELECT DISTINCT clinic_id FROM patients WHERE anonymized_at IS NOT NULL "
            "OR blocked_at IS NOT NULL",
    "consent_records": "SELECT DISTINCT clinic_id FROM patients "
                       "WHERE data_consent_status <> 'pending'",
}


def _must_exist(conn: psycopg.Connection[Any], only: uuid.UUID | None,
                ) -> set[tuple[str, uuid.UUID]]:
    out: set[tuple[str, uuid.UUID]] = set()
    for chain, query in _MUST_EXIST.items():
        out |= {(chain, uuid.UUID(str(r[0]))) for r in conn.execute(query)
                if only is None or uuid.UUID(str(r[0])) == only}
    return out


def _targets(conn: psycopg.Connection[Any], known: _Known,
             only: uuid.UUID | None) -> list[tuple[str, uuid.UUID]]:
    """Every chain that exists, or should: rows, cuts, anchors, vouched heads."""
    found: set[tuple[str, uuid.UUID]] = set(known.must_exist)
    for chain in CHAINS:
        where, params = ("WHERE clinic_id = %s", (only,)) if only else ("", ())
        found |= {(chain, uuid.UUID(str(r[0]))) for r in conn.execute(
            f"SELECT DISTINCT clinic_id FROM {chain} {where}", params)}  # noqa: S608
    found |= {(AUDIT, c) for c in (*known.cuts, *known.anchors)}
    found |= set(known.wanted)
    if only is not None:
        found = {t for t in found if t[1] == only} | {(AUDIT, only)}
    return sorted(found, key=lambda t: (str(t[1]), t[0]))


def _verify_one(conn: psycopg.Connection[Any], keyring: KeyRing, chain: str,
                clinic: uuid.UUID, known: _Known, *, fast: bool,
                recorded: dict[tuple[str, uuid.UUID], tuple[int, str]] | None = None,
                ) -> ChainReport:
    report = ChainReport(clinic, chain=chain)
    typed = not fast and chain in _TYPED
    rules = (ChainRules(chain, partial(_reference_keyed, keyring, chain), _reference_legacy)
             if typed else ChainRules(chain, text_hashes(chain, hashers(keyring))))
    if chain == AUDIT:
        problem = _cut_and_anchor(rules, known, keyring, clinic)
        if problem is not None:
            report.broken_at, report.reason = problem
            return report
    wanted = known.wanted.get((chain, clinic), {})
    cut_seq = rules.cut[0] if rules.cut else 0
    for seq, (head, who) in wanted.items():
        if seq > cut_seq:
            rules.wanted[seq] = (head, who)
        elif seq == cut_seq and rules.cut and rules.cut[1] != head:
            report.broken_at, report.reason = seq, f"the retention cut differs from {who}"
            return report
    if recorded is not None:
        rules.on_row = partial(_recorded_heads, recorded)
    report.unsealed = conn.execute(
        f"SELECT count(*) FROM {chain} WHERE clinic_id = %s AND seq IS NULL", (clinic,)  # noqa: S608
    ).fetchone()[0]  # type: ignore[index]
    with conn.cursor(name=f"chain_{chain}_{clinic.hex}") as cursor:
        cursor.itersize = 5000
        if not fast and not typed:
            text_loaders(cursor)
        cursor.execute(f"SELECT {_COLUMNS[chain]} FROM {chain} WHERE clinic_id = %s "  # noqa: S608
                       "AND seq IS NOT NULL ORDER BY seq", (clinic,))
        rows = _typed(cursor) if typed else prefetched(cursor, 5000)
        check_text_chain(report, rows, rules)
    if (report.ok and report.sealed == 0 and report.unsealed == 0 and rules.cut is None
            and (chain, clinic) in known.must_exist):
        report.broken_at = 1
        report.reason = ("the chain is empty but the clinic still holds the records that "
                         "wrote its entries: the whole chain was deleted (or those records "
                         "were written around it)")
    if report.ok and rules.wanted:
        report.checkpoint = "matches"
    return report


def _cut_and_anchor(rules: ChainRules, known: _Known, keyring: KeyRing,
                    clinic: uuid.UUID) -> tuple[int, str] | None:
    cut = known.cuts.get(clinic)
    if cut is not None:
        seq, head, archive, signature, key_id = cut
        key = keyring.legacy_audit_key if key_id is None else keyring.audit_keys.get(key_id)
        if key is None or not hmac.compare_digest(sign_cut(key, clinic, seq, head, archive),
                                                  signature):
            return seq, "retention cut signature invalid (the cut was forged or altered)"
        rules.cut = (seq, head.hex())
    anchor = known.anchors.get(clinic)
    if anchor is not None:
        seq, head, key_id, signature = anchor
        key = keyring.audit_keys.get(key_id)
        if key is None or not head_valid(key, key_id, AUDIT, clinic, seq, head, signature):
            return seq, "anchor signature invalid (the anchor was forged or altered)"
        rules.anchor = (seq, head.hex())
    return None


def _recorded_heads(recorded: dict[tuple[str, uuid.UUID], tuple[int, str]],
                    row: tuple[Any, ...], _hash: str) -> None:
    """A verified system-chain event that is an in-database checkpoint: remember its heads."""
    if row[6] != "VERIFY" or row[7] != CHECKPOINT_RESOURCE:
        return
    details = json.loads(row[16]) if isinstance(row[16], str) else row[16]
    for chain, heads in (details.get("heads") or {}).items():
        if chain not in CHAINS or not isinstance(heads, dict):
            continue
        for clinic, (seq, head) in heads.items():
            key = (chain, uuid.UUID(clinic))
            if key not in recorded or recorded[key][0] < int(seq):
                recorded[key] = (int(seq), str(head))


def _typed(cursor: psycopg.ServerCursor[Any]) -> Iterator[tuple[Any, ...]]:
    """The reference path: typed rows, their stored hashes as the checker's hex text."""
    for row in cursor:
        prev = None if row[-3] is None else "\\x" + bytes(row[-3]).hex()
        stored = None if row[-2] is None else "\\x" + bytes(row[-2]).hex()
        yield (*row[:-3], prev, stored, row[-1])


def _reference_keyed(keyring: KeyRing, chain: str, row: tuple[Any, ...], key_id: str,
                     seq: str, prev: str | None) -> str | None:
    key = keyring.audit_keys.get(key_id)
    if key is None:
        return None
    before = None if prev is None else bytes.fromhex(prev)
    if chain == AUDIT:
        return keyed_event_hash(key, ChainEvent(*row), key_id, int(seq), before).hex()
    return keyed_ledger_hash(key, LedgerEntry(*row), key_id, int(seq), before).hex()


def _reference_legacy(row: tuple[Any, ...], _seq: str, prev: str | None) -> str:
    return event_hash(ChainEvent(*row), None if prev is None else bytes.fromhex(prev)).hex()


# ------------------------------------------------------------------------- checkpoints
def chain_heads(db: Database, actor: Actor) -> list[tuple[str, uuid.UUID, int, bytes]]:
    """(chain, clinic, seq, hash) of every sealed chain's head."""
    with db.service_session(actor.id, actor.role) as session:
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
    with db.service_session(actor.id, actor.role) as session:
        session.execute(text(
            "INSERT INTO audit_events (action, resource_type, details) "
            "VALUES ('VERIFY', :r, CAST(:d AS jsonb))"),
            {"r": CHECKPOINT_RESOURCE, "d": json.dumps({"heads": by_chain})})
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
    # the clinic's transaction: the RETENTION event below goes to its chain
    with db.service_session(actor.id, actor.role, clinic) as session:
        pruned = session.execute(text(
            "SELECT neonpro_audit_prune(:c, :s, :h, :a, :kid, :sig)"), {
            "c": clinic, "s": upto, "h": head, "a": archive_sha, "kid": key_id,
            "sig": signature}).scalar_one()
        session.execute(text(
            "INSERT INTO audit_events (action, resource_type, details) "
            "VALUES ('RETENTION', 'audit_events', CAST(:d AS jsonb))"),
            {"d": json.dumps({"pruned": int(pruned), "upto_seq": upto,
                              "archive_sha256": archive_sha})})
    return PruneResult(clinic, upto, int(pruned), str(path), archive_sha)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID | datetime | date):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    if value is not None and not isinstance(value, str | int | float | bool | dict | list):
        return str(value)
    return value
