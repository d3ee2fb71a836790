"""Verifying the chains: every seal recomputed, against cuts, anchors and checkpoints."""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads

from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db.audit.sealing import (
    _COLUMNS,
    _TEXT_SETTINGS,
    _TYPED,
    AUDIT,
    CHAINS,
    CHECKPOINT_RESOURCE,
    LEDGER,
    SYSTEM_CHAIN,
    hashers,
    sign_cut,
)
from neonpro.adapters.db.audit_text import (
    ChainRules,
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
    LedgerEntry,
    checkpoint_valid,
    event_hash,
    head_valid,
    keyed_event_hash,
    keyed_ledger_hash,
)
from neonpro.domain.audit_reports import ChainReport, Checkpoint


def checkpoint_valid_with(checkpoint: Checkpoint, keyring: KeyRing) -> bool:
    """Whether ``checkpoint`` is signed by an audit key of ``keyring`` (a v1 file: by the key
    of before audit key ids, audit chains only)."""
    head = bytes.fromhex(checkpoint.hash)
    if checkpoint.key_id is None:
        return checkpoint.chain == AUDIT and checkpoint_valid(
            keyring.legacy_audit_key, checkpoint.clinic_id, checkpoint.seq, head,
            checkpoint.signature)
    key = keyring.audit_keys.get(checkpoint.key_id)
    return key is not None and head_valid(key, checkpoint.key_id, checkpoint.chain,
                                          checkpoint.clinic_id, checkpoint.seq, head,
                                          checkpoint.signature)


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
        if not checkpoint_valid_with(cp, keyring):
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
