"""The chains' fast path: every column read as its text output, no per-row objects.

Sealing and ``audit verify`` both build the canonical encodings here, from the server's
text output of each column (UTC/ISO timestamps, hex bytea, ``details`` as ``jsonb`` text),
so they hash the same bytes as the reference implementation in ``domain.audit_chain``
(which recomputes from typed values and stays the reference: tests compare both on tricky
data). Non-ASCII rows are rebuilt field by field with octet lengths; IPv6 addresses go
through the reference formatter.

Row layouts (the ``SELECT`` lists of ``audit.py``): an audit event is ``clinic_id, seq,
id, occurred_at, actor_id, actor_role, action, resource_type, resource_id, patient_ref,
status, risk_level, ip_address, user_agent, session_id, request_id, details,
retain_until, prev_hash, hash, key_id``; an erasure-ledger entry is ``clinic_id, seq, id,
patient_id, request_id, decided_at, decided_by, outcome, decisions, prev_hash, hash,
key_id``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.string import TextLoader

from neonpro.domain.audit_chain import LEDGER_PREFIX, PREFIX, PREFIX_V2, Hmac, _ip

if TYPE_CHECKING:
    from neonpro.adapters.db.audit import ChainReport

TEXT_TYPES: tuple[str | int, ...] = (
    "uuid", "timestamptz", "date", "inet", "jsonb", "bytea",
    1009,  # text[]: its output text, '{a,b}'
)
_TS_LEN = 29  # "2025-01-02 03:04:05.123456+00"
Row = tuple[Any, ...]


def text_loaders(conn: psycopg.Connection[Any] | psycopg.Cursor[Any]) -> None:
    """Load these types as text (on a connection, or on one cursor only)."""
    for name in TEXT_TYPES:
        conn.adapters.register_loader(name, TextLoader)


def text_mode(conn: psycopg.Connection[Any] | psycopg.Cursor[Any]) -> None:
    """Load these types as text and pin their output format for the transaction."""
    text_loaders(conn)
    conn.execute("SELECT set_config('TimeZone', 'UTC', true), "
                 "set_config('DateStyle', 'ISO, YMD', true), "
                 "set_config('bytea_output', 'hex', true)")


def _ts_text(s: str) -> str:
    """``2025-01-02 03:04:05.12+00`` (UTC, ISO) -> the canonical timestamp."""
    if len(s) == _TS_LEN and s[-3:] == "+00":
        return f"{s[:10]}T{s[11:26]}Z"
    if len(s) >= 22 and s[-3:] == "+00" and s[4] == "-" and s[10] == " ":  # noqa: PLR2004
        body = s[:-3]
        frac = body[20:] if len(body) > 19 else ""  # noqa: PLR2004
        return f"{body[:10]}T{body[11:19]}.{frac:0<6}Z"
    return datetime.fromisoformat(s).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _lp(v: str | None) -> str:
    if v is None:
        return "~"
    return f"{len(v) if v.isascii() else len(v.encode())}:{v}"


def _hex(v: str | None) -> str | None:
    return None if v is None else v[2:]  # '\\x...'


@functools.lru_cache(maxsize=4096)
def _ip6(ip: str) -> str | None:
    """IPv6 and masked addresses through the reference formatter (a trail repeats the same
    few addresses: each is parsed once)."""
    return _ip(ip)


def _ip_text(ip: str | None) -> str | None:
    if ip is not None and (":" in ip or "/" in ip):
        return _ip6(ip)
    return ip


def audit_v1(row: Row, seq: str, prev: str | None) -> str:
    """The unkeyed v1 encoding of an audit event (sealed before audit keys)."""
    (clinic, _, eid, occ, actor, role, action, rtype, res, pref, status, risk, ip, ua,
     session, request, details, retain) = row[:18]
    return PREFIX + "".join(_lp(f) for f in (
        clinic, seq, eid, _ts_text(occ), actor, role, action, rtype, res, _hex(pref), status,
        risk, _ip_text(ip), ua, session, request, details, retain, prev))


def audit_v2(row: Row, key_id: str, seq: str, prev: str | None) -> str:
    """The keyed v2 encoding of an audit event (``domain.audit_chain.canonical_v2``)."""
    (clinic, _, eid, occ, actor, role, action, rtype, res, pref, status, risk, ip, ua,
     session, request, details, retain) = row[:18]
    if ip is not None and (":" in ip or "/" in ip):
        ip = _ip6(ip)
    ts = f"{occ[:10]}T{occ[11:26]}Z" if len(occ) == _TS_LEN and occ[-3:] == "+00" else (
        _ts_text(occ))
    pref_hex = None if pref is None else pref[2:]
    canon = (f"{PREFIX_V2}{len(key_id)}:{key_id}{len(clinic)}:{clinic}{len(eid)}:{eid}"
             f"{len(ts)}:{ts}"
             f"{'~' if actor is None else f'{len(actor)}:{actor}'}"
             f"{'~' if role is None else f'{len(role)}:{role}'}"
             f"{len(action)}:{action}"
             f"{'~' if rtype is None else f'{len(rtype)}:{rtype}'}"
             f"{'~' if res is None else f'{len(res)}:{res}'}"
             f"{'~' if pref_hex is None else f'{len(pref_hex)}:{pref_hex}'}"
             f"{len(status)}:{status}{len(risk)}:{risk}"
             f"{'~' if ip is None else f'{len(ip)}:{ip}'}"
             f"{'~' if ua is None else f'{len(ua)}:{ua}'}"
             f"{'~' if session is None else f'{len(session)}:{session}'}"
             f"{'~' if request is None else f'{len(request)}:{request}'}"
             f"{len(details)}:{details}{len(retain)}:{retain}{len(seq)}:{seq}"
             f"{'~' if prev is None else f'{len(prev)}:{prev}'}")
    if canon.isascii():
        return canon
    return PREFIX_V2 + "".join(_lp(f) for f in (
        key_id, clinic, eid, ts, actor, role, action, rtype, res, pref_hex, status, risk, ip,
        ua, session, request, details, retain, seq, prev))


@dataclass(frozen=True)
class ChainSpec:
    """A chained ledger other than the audit trail: its table, the prefix of its encoding
    and the fields hashed, in order, after ``key_id``, ``clinic_id`` and ``id``. A field
    named in ``timestamps`` is rendered as the canonical UTC timestamp; every other field is
    hashed as its text output (``jsonb`` and arrays included). Rows are read as ``clinic_id,
    seq, id, <fields>, prev_hash, hash, key_id``."""

    table: str
    prefix: str
    fields: tuple[str, ...]
    timestamps: frozenset[str]
    order: str  # the sealing order (commit-visible time first)

    @property
    def columns(self) -> str:
        return ", ".join(("clinic_id", "seq", "id", *self.fields, "prev_hash", "hash", "key_id"))

    def canonical(self, row: Row, key_id: str, seq: str, prev: str | None) -> str:
        values = [_ts_text(v) if v is not None and name in self.timestamps else v
                  for name, v in zip(self.fields, row[3:-3], strict=True)]
        return self.prefix + "".join(_lp(f) for f in (key_id, row[0], row[2], *values, seq,
                                                       prev))


# the ledgers chained besides the audit trail. consent_records leaves out ``evidence``: the
# channel's identifiers are personal data the law may require removing (erasure,
# retention), and removing them must not break the chain; the proof (who, when, what
# terms, which state) is chained.
LEDGER_SPECS = {
    "erasure_ledger": ChainSpec(
        "erasure_ledger", LEDGER_PREFIX,
        ("patient_id", "request_id", "decided_at", "decided_by", "outcome", "decisions"),
        frozenset({"decided_at"}), "decided_at, id"),
    "consent_records": ChainSpec(
        "consent_records", "neonpro-consent-v1",
        ("patient_id", "purpose", "legal_basis", "status", "given_at", "revoked_at",
         "expires_at", "collection_method", "terms_version", "terms_hash", "data_categories",
         "collected_by", "supersedes_id", "created_at"),
        frozenset({"given_at", "revoked_at", "expires_at", "created_at"}), "created_at, id"),
    "disclosures": ChainSpec(
        "disclosures", "neonpro-disclosure-v1",
        ("patient_id", "disclosed_at", "recipient_name", "recipient_address",
         "data_description", "data_categories", "purpose", "legal_basis", "consent_record_id",
         "disclosed_by", "created_at"),
        frozenset({"disclosed_at", "created_at"}), "created_at, id"),
}


def ledger_v1(row: Row, key_id: str, seq: str, prev: str | None) -> str:
    """An erasure-ledger entry (``domain.audit_chain.canonical_ledger``)."""
    return LEDGER_SPECS["erasure_ledger"].canonical(row, key_id, seq, prev)


# (row, key id, seq, prev hash hex) -> hash hex, or None when the key is unknown
KeyedHash = Callable[[Row, str, str, "str | None"], "str | None"]
# (row, seq, prev hash hex) -> hash hex of an unkeyed (pre-key) audit event
LegacyHash = Callable[[Row, str, "str | None"], str]


def _legacy_text(row: Row, seq: str, prev: str | None) -> str:
    return hashlib.sha256(audit_v1(row, seq, prev).encode()).hexdigest()


def text_hashes(kind: str, hashers: Mapping[str, Hmac]) -> KeyedHash:
    """The keyed hash of a text row of chain ``kind``."""
    build = audit_v2 if kind == "audit_events" else LEDGER_SPECS[kind].canonical

    def keyed(row: Row, key_id: str, seq: str, prev: str | None) -> str | None:
        hasher = hashers.get(key_id)
        return None if hasher is None else hasher.hexdigest(build(row, key_id, seq,
                                                                  prev).encode())
    return keyed


@dataclass
class ChainRules:
    """What one chain is checked against besides its own links."""

    kind: str  # audit_events | erasure_ledger
    keyed: KeyedHash
    legacy: LegacyHash = _legacy_text
    cut: tuple[int, str] | None = None  # retention cut: (seq, hash hex)
    anchor: tuple[int, str] | None = None  # signed head of the unkeyed prefix
    # seq -> (hash hex, who vouches for it): signed checkpoints, heads recorded in the
    # system chain
    wanted: dict[int, tuple[str, str]] = field(default_factory=dict)
    on_row: Callable[[Row, str], None] | None = None  # each verified row, with its hash


def check_text_chain(report: ChainReport, rows: Iterable[Row], rules: ChainRules) -> None:
    """Verify one chain from text rows (ordered by seq); fills ``report``."""
    cut = rules.cut
    expected = cut[0] + 1 if cut else 1
    report.first_seq = expected
    broken, expected, count, prev = _walk(rows, rules, expected, cut[1] if cut else None)
    if broken is not None:
        report.reason = broken
        report.broken_at = expected
    report.sealed = count
    report.head_seq = expected - 1 if count else (cut[0] if cut else 0)
    report.head_hash = None if broken else prev
    if broken is None:
        _after_the_head(report, rules)


def _walk(  # noqa: C901  (one flat loop: verify's hot path)
    rows: Iterable[Row], rules: ChainRules, expected: int, prev: str | None,
) -> tuple[str | None, int, int, str | None]:
    """Check rows from seq ``expected`` on: (why it broke or None, the seq reached, rows
    verified, the last verified hash)."""
    audit = rules.kind == "audit_events"
    anchor_seq, anchor_hash = rules.anchor or (0, "")
    keyed, legacy, wanted, on_row = rules.keyed, rules.legacy, rules.wanted, rules.on_row
    count = 0
    broken: str | None = None
    for row in rows:
        seq = row[1]
        if seq != expected:
            broken = (f"missing event: expected seq {expected}, found {seq} "
                      "(deleted or renumbered)")
            break
        stored_prev, stored_hash, key_id = row[-3], row[-2], row[-1]
        if (None if stored_prev is None else stored_prev[2:]) != prev:
            broken = "prev_hash does not match the previous event (inserted or reordered)"
            break
        sq = str(seq)
        if key_id is None:
            if not audit or seq > anchor_seq:
                broken = ("not sealed with an audit key (an unkeyed hash where the signed "
                          "anchor allows none: rewritten without the key)")
                break
            computed = legacy(row, sq, prev)
        else:
            keyed_hash = keyed(row, key_id, sq, prev)
            if keyed_hash is None:
                broken = f"sealed with audit key {key_id!r}, which is not in the key ring"
                break
            computed = keyed_hash
        if stored_hash is None or computed != stored_hash[2:]:
            broken = "hash does not match the event's content (edited)"
            break
        if seq == anchor_seq and computed != anchor_hash:
            broken = "the unkeyed prefix does not end at its signed anchor (rewritten)"
            break
        vouched = wanted.get(seq)
        if vouched is not None and vouched[0] != computed:
            broken = f"hash differs from the one {vouched[1]} (the chain was rewritten)"
            break
        if on_row is not None:
            on_row(row, computed)
        prev = computed
        expected += 1
        count += 1
    return broken, expected, count, prev


def _after_the_head(report: ChainReport, rules: ChainRules) -> None:
    """What must exist beyond the last event: the anchor, checkpointed sequence numbers."""
    head = report.head_seq
    if rules.anchor and head < rules.anchor[0]:
        report.broken_at = head + 1
        report.reason = (f"chain ends at seq {head} before its signed anchor at seq "
                         f"{rules.anchor[0]}: events were deleted")
        return
    beyond = [(seq, who) for seq, (_h, who) in rules.wanted.items() if seq > head]
    if beyond:
        seq, who = max(beyond)
        report.broken_at = head + 1
        report.reason = (f"chain ends at seq {head} but {who} covers seq {seq}: "
                         "events were deleted (truncated tail or whole chain)")
        report.checkpoint = "truncated"


def prefetched(cursor: psycopg.ServerCursor[Any], size: int) -> Iterator[Row]:
    """The cursor's rows, the next batch fetched by a thread while this one is hashed.

    psycopg releases the GIL while it waits for the server, so the server produces batch
    n+1 while Python hashes batch n (a plain server cursor alternates the two).
    """
    batches: queue.Queue[Any] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def pump() -> None:
        try:
            while not stop.is_set():
                batch = cursor.fetchmany(size)
                batches.put(batch)
                if not batch:
                    return
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer)
            batches.put(exc)

    thread = threading.Thread(target=pump, daemon=True, name="audit-verify-prefetch")
    thread.start()
    try:
        while True:
            batch = batches.get()
            if isinstance(batch, BaseException):
                raise batch
            if not batch:
                return
            yield from batch
    finally:  # a broken chain stops early: let the pump finish its fetch and end
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                batches.get(timeout=0.05)
        thread.join()
