"""The chains' canonical encodings and keyed hashes (the reference implementation).

Two chains per clinic, both HMAC-SHA256 with an audit key kept outside the database and
named by its id in every entry (so old entries verify with the old key after a rotation):

* audit events, ``neonpro-audit-v2``: the key id, the event's fields, then its ``seq``
  and the previous entry's hash;
* erasure-ledger entries, ``neonpro-erasure-v1``: the same for a ledger row.

Events sealed before audit keys existed (``key_id`` NULL) keep their unkeyed
``neonpro-audit-v1`` hash (plain SHA-256, the field order of the SQL function that made
them); a signed anchor per chain (migration 0011) vouches for them.

Pinned so that every reader computes the same bytes whatever the session's time zone:
UTC timestamps with microseconds, dates as ``YYYY-MM-DD``, hashes and references as
lower-case hex, ``details`` as PostgreSQL's ``jsonb`` text (keys ordered by length then
bytes, ``", "`` and ``": "`` separators, integers only), every field length-prefixed
(``<octets>:<value>``, NULL as ``~``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

PREFIX = "neonpro-audit-v1"  # unkeyed, before audit keys
PREFIX_V2 = "neonpro-audit-v2"
LEDGER_PREFIX = "neonpro-erasure-v1"


def _lp(value: str | None) -> str:
    if value is None:
        return "~"
    return f"{len(value.encode())}:{value}"


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}


def _string(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20:  # noqa: PLR2004
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def jsonb_text(value: Any) -> str:  # noqa: PLR0911  (one return per JSON kind)
    """``value`` rendered exactly as PostgreSQL renders it as ``jsonb::text``."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | Decimal):
        return str(value)  # Decimal: jsonb numbers read back with parse_float=Decimal
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(jsonb_text(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{_string(k)}: {jsonb_text(value[k])}" for k in keys) + "}"
    msg = f"audit details accept str, int, bool, None, lists and objects, not {type(value)}"
    raise TypeError(msg)


def check_details(details: dict[str, Any]) -> dict[str, Any]:
    """Refuse what the canonical encoding cannot pin (floats, bytes, dates): convert first."""
    jsonb_text(details)
    json.dumps(details)
    return details


def _ip(value: Any) -> str | None:
    if value is None:
        return None
    address = ipaddress.ip_interface(str(value)).ip
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"  # PostgreSQL keeps the dotted tail
    return str(address)


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """The hashed fields of one audit event, as read back from the database."""

    clinic_id: uuid.UUID
    seq: int
    id: uuid.UUID
    occurred_at: datetime
    actor_id: uuid.UUID | None
    actor_role: str | None
    action: str
    resource_type: str | None
    resource_id: str | None
    patient_ref: bytes | None
    status: str
    risk_level: str
    ip_address: Any
    user_agent: str | None
    session_id: str | None
    request_id: str | None
    details: Any
    retain_until: date
    prev_hash: bytes | None
    hash: bytes | None
    key_id: str | None = None


def canonical(event: ChainEvent, prev_hash: bytes | None) -> bytes:
    """The unkeyed v1 encoding (events sealed before audit keys)."""
    parts = [
        str(event.clinic_id), str(event.seq), str(event.id), _ts(event.occurred_at),
        None if event.actor_id is None else str(event.actor_id), event.actor_role,
        event.action, event.resource_type, event.resource_id,
        None if event.patient_ref is None else bytes(event.patient_ref).hex(),
        event.status, event.risk_level, _ip(event.ip_address), event.user_agent,
        event.session_id, event.request_id, jsonb_text(event.details),
        event.retain_until.isoformat(), None if prev_hash is None else prev_hash.hex(),
    ]
    return (PREFIX + "".join(_lp(p) for p in parts)).encode()


def event_hash(event: ChainEvent, prev_hash: bytes | None) -> bytes:
    """The unkeyed v1 hash (events sealed before audit keys)."""
    return hashlib.sha256(canonical(event, prev_hash)).digest()


def _ref(value: bytes | None) -> str | None:
    return None if value is None else bytes(value).hex()


def canonical_v2(event: ChainEvent, key_id: str, seq: int, prev_hash: bytes | None) -> bytes:
    parts = [
        key_id, str(event.clinic_id), str(event.id), _ts(event.occurred_at),
        None if event.actor_id is None else str(event.actor_id), event.actor_role,
        event.action, event.resource_type, event.resource_id, _ref(event.patient_ref),
        event.status, event.risk_level, _ip(event.ip_address), event.user_agent,
        event.session_id, event.request_id, jsonb_text(event.details),
        event.retain_until.isoformat(), str(seq), _ref(prev_hash),
    ]
    return (PREFIX_V2 + "".join(_lp(p) for p in parts)).encode()


class Hmac:
    """HMAC-SHA256 with one key, its pads hashed once (a copy per message)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = 64  # SHA-256's block size; longer keys are hashed first (RFC 2104)
        padded = (key if len(key) <= block else hashlib.sha256(key).digest()).ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def keyed_event_hash(key: bytes, event: ChainEvent, key_id: str, seq: int,
                     prev_hash: bytes | None) -> bytes:
    return hmac.new(key, canonical_v2(event, key_id, seq, prev_hash), hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """The hashed fields of one erasure-ledger entry, as read back from the database."""

    clinic_id: uuid.UUID
    seq: int
    id: uuid.UUID
    patient_id: uuid.UUID
    request_id: uuid.UUID | None
    decided_at: datetime
    decided_by: uuid.UUID | None
    outcome: str
    decisions: Any
    prev_hash: bytes | None
    hash: bytes | None
    key_id: str | None = None


def canonical_ledger(entry: LedgerEntry, key_id: str, seq: int,
                     prev_hash: bytes | None) -> bytes:
    parts = [
        key_id, str(entry.clinic_id), str(entry.id), str(entry.patient_id),
        None if entry.request_id is None else str(entry.request_id), _ts(entry.decided_at),
        None if entry.decided_by is None else str(entry.decided_by), entry.outcome,
        jsonb_text(entry.decisions), str(seq), _ref(prev_hash),
    ]
    return (LEDGER_PREFIX + "".join(_lp(p) for p in parts)).encode()


def keyed_ledger_hash(key: bytes, entry: LedgerEntry, key_id: str, seq: int,
                      prev_hash: bytes | None) -> bytes:
    return hmac.new(key, canonical_ledger(entry, key_id, seq, prev_hash),
                    hashlib.sha256).digest()


# ----------------------------------------------------------------- checkpoints
def sign_checkpoint(key: bytes, clinic_id: uuid.UUID, seq: int, head: bytes) -> str:
    """HMAC-SHA256 over a chain head (checkpoint files of format v1)."""
    message = f"neonpro-checkpoint-v1|{clinic_id}|{seq}|{head.hex()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def checkpoint_valid(key: bytes, clinic_id: uuid.UUID, seq: int, head: bytes,
                     signature: str) -> bool:
    return hmac.compare_digest(sign_checkpoint(key, clinic_id, seq, head), signature)


def sign_head(key: bytes, key_id: str, chain: str, clinic_id: uuid.UUID, seq: int,
              head: bytes) -> str:
    """HMAC-SHA256 over one chain's head at ``seq`` (checkpoints of format v2, anchors)."""
    message = f"neonpro-head-v2|{key_id}|{chain}|{clinic_id}|{seq}|{head.hex()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def head_valid(key: bytes, key_id: str, chain: str, clinic_id: uuid.UUID, seq: int,
               head: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign_head(key, key_id, chain, clinic_id, seq, head), signature)
