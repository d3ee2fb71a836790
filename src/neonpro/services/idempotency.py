"""Idempotency keys: a retried POST, PATCH or DELETE is carried out at most once.

A request with an ``Idempotency-Key`` first claims the key (:func:`begin`, its own committed
transaction, so a concurrent duplicate sees the claim). Its work then commits as usual, and
the work's own transaction marks the key committed (the unit of work does it, just before
COMMIT). Its answer is stored afterwards (:func:`finish`, encrypted: it may hold personal
data), or the claim is given back if the request failed before its work committed
(:func:`release`). A later request with the same key finds, in this order:

* nothing, or an expired key: it claims the key and does the work;
* another request under the same key (method, path, query, body or caller differ): refused;
* the answer: replayed, the work not done again (an answer an erasure scrubbed: refused);
* the work committed but no answer, and its attempt is over (the answer was lost with the
  connection, the process, or a COMMIT whose acknowledgement never came): what the work
  changed, from its audit events (same request id), so the client re-reads it; the work is
  not done again;
* a claim still in flight: refused until it ends; an in-flight claim past its lease, or
  from before a server restart, is abandoned and taken over. The attempt that lost the key
  can no longer mark it, so its work rolls back: never two.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from neonpro.domain.idempotency import Claim
from neonpro.domain.ports import UnitOfWork


@dataclass(frozen=True)
class Claimed:
    claim: Claim


@dataclass(frozen=True)
class Replay:
    status: int
    content_type: str | None
    body: str


@dataclass(frozen=True)
class Applied:
    """The work committed; its answer was not kept. What it changed (type, id, action)."""

    resources: list[dict[str, Any]]


@dataclass(frozen=True)
class InFlight:
    pass


@dataclass(frozen=True)
class Mismatch:
    pass


@dataclass(frozen=True)
class Scrubbed:
    """The answer was kept, and is gone: an erasure scrubbed it (it named an erased
    patient), or the field key it was encrypted with was removed."""


Begun = Claimed | Replay | Applied | InFlight | Mismatch | Scrubbed


def begin(uow: UnitOfWork, key_hash: bytes, request_hash: bytes, lease_s: float,
          ttl_hours: int) -> Begun:
    """Claim the key, or say what became of the request that holds it."""
    with uow:
        keys = uow.idempotency
        claim = keys.claim(key_hash, request_hash, lease_s, ttl_hours)
        if claim is None:
            found = _found(uow, key_hash, request_hash, lease_s, ttl_hours)
            if not isinstance(found, Claimed):
                return found
            claim = found.claim
        uow.commit()
    return Claimed(claim)


def _found(uow: UnitOfWork, key_hash: bytes, request_hash: bytes, lease_s: float,  # noqa: PLR0911  (one return per outcome)
           ttl_hours: int) -> Begun:
    keys = uow.idempotency
    row = keys.find(key_hash)
    if row is None:  # released between the claim and this read: the next attempt claims it
        return InFlight()
    if row.request_hash != request_hash and not row.expired:
        return Mismatch()
    if row.expired or row.abandoned:
        taken = keys.take_over(key_hash, row.claim, request_hash, lease_s, ttl_hours)
        return InFlight() if taken is None else Claimed(taken)
    if row.state == "done":
        if row.scrubbed or row.body is None or row.status_code is None:
            return Scrubbed()
        return Replay(row.status_code, row.content_type, row.body)
    if row.state == "committed" and row.lapsed:  # its attempt ended without keeping an answer
        changed = keys.changed_by(row.request_id, row.created_at) if row.request_id else []
        return Applied(changed)
    return InFlight()  # its attempt is still running (perhaps keeping its answer right now)


def finish(uow: UnitOfWork, claim: Claim, status: int, content_type: str | None,
           body: str, patient_ids: list[uuid.UUID]) -> bool:
    """Keep the answer of the attempt holding ``claim``; False if it no longer holds it."""
    with uow:
        kept = uow.idempotency.finish(claim, status, content_type, body, patient_ids)
        uow.commit()
    return kept


def release(uow: UnitOfWork, claim: Claim) -> None:
    """Give the key back: the attempt failed and its work did not commit."""
    with uow:
        uow.idempotency.release(claim)
        uow.commit()
