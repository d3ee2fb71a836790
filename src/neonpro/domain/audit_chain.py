"""The audit chain's canonical encoding and hash, in Python (mirrors ``neonpro_audit_canonical``).

Pinned so that Python and SQL compute the same bytes whatever the session's time zone:
UTC timestamps with microseconds, dates as ``YYYY-MM-DD``, hashes and references as
lower-case hex, ``details`` as PostgreSQL's ``jsonb`` text (keys ordered by length then
bytes, ``", "`` and ``": "`` separators, integers only), every field length-prefixed.
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

PREFIX = "neonpro-audit-v1"


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


def canonical(event: ChainEvent, prev_hash: bytes | None) -> bytes:
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
    return hashlib.sha256(canonical(event, prev_hash)).digest()


# ----------------------------------------------------------------- checkpoints
def sign_checkpoint(key: bytes, clinic_id: uuid.UUID, seq: int, head: bytes) -> str:
    """HMAC-SHA256 over a chain head, with a key kept outside the database."""
    message = f"neonpro-checkpoint-v1|{clinic_id}|{seq}|{head.hex()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def checkpoint_valid(key: bytes, clinic_id: uuid.UUID, seq: int, head: bytes,
                     signature: str) -> bool:
    return hmac.compare_digest(sign_checkpoint(key, clinic_id, seq, head), signature)
