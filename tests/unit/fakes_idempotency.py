"""An in-memory fake of the Idempotency-Key store (``domain.ports.IdempotencyStore``).

As in SQL (``adapters/db/repositories/idempotency.py``): one row per clinic and key;
``claim`` only on a free key; ``take_over`` only of the same claim, expired or in flight
and lapsed (past its lease, or from before a server restart: :meth:`restart`);
``finish`` and ``release`` only by the claim holding the key; ``scrub`` forgets answers
naming given patients. The work's own commit marking the key ``committed`` is
:meth:`mark_committed`. Answers are kept in clear (SQL encrypts them). Rows are replaced on
change, so the unit of work's rollback restores them.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from neonpro.domain.errors import Forbidden
from neonpro.domain.idempotency import Claim, KeyRow
from neonpro.domain.vocabulary import AuditAction

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork

NOT_CHANGES = frozenset({AuditAction.VIEW, AuditAction.EXPORT, AuditAction.LEGAL_HOLD_READ})


def _now() -> datetime:
    return datetime.now(UTC)


class FakeIdempotency:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.rows: dict[tuple[uuid.UUID, bytes], dict[str, Any]] = uow.store.setdefault(
            "idempotency_keys", {})
        self.server: dict[str, int] = uow.store.setdefault("server", {"boot": 0})

    @property
    def clinic_id(self) -> uuid.UUID:
        if self.uow.clinic_id is None:
            raise Forbidden("this operation needs a clinic: open a tenant unit of work")
        return self.uow.clinic_id

    def restart(self) -> None:
        """The server restarted: every claim in flight before is abandoned."""
        self.server["boot"] += 1

    def _fresh(self, key_hash: bytes, request_hash: bytes, lease_s: float,
               ttl_hours: int) -> Claim:
        now = _now()
        claim = Claim(self.clinic_id, key_hash, uuid.uuid4())
        self.rows[(self.clinic_id, key_hash)] = {
            "request_hash": request_hash, "claim": claim.claim, "state": "in_flight",
            "boot": self.server["boot"], "lease_until": now + timedelta(seconds=lease_s),
            "expires_at": now + timedelta(hours=ttl_hours), "status_code": None,
            "content_type": None, "body": None, "patient_ids": [], "scrubbed": False,
            "request_id": self.uow.actor.request_id, "created_at": now}
        return claim

    def claim(self, key_hash: bytes, request_hash: bytes, lease_s: float,
              ttl_hours: int) -> Claim | None:
        if (self.clinic_id, key_hash) in self.rows:
            return None
        return self._fresh(key_hash, request_hash, lease_s, ttl_hours)

    def _lapsed(self, row: dict[str, Any]) -> bool:
        return bool(row["lease_until"] < _now() or row["boot"] != self.server["boot"])

    def find(self, key_hash: bytes) -> KeyRow | None:
        row = self.rows.get((self.clinic_id, key_hash))
        if row is None:
            return None
        return KeyRow(row["request_hash"], row["claim"], row["state"], self._lapsed(row),
                      row["expires_at"] < _now(), row["status_code"], row["content_type"],
                      row["body"], row["scrubbed"], row["request_id"], row["created_at"])

    def take_over(self, key_hash: bytes, old: uuid.UUID, request_hash: bytes, lease_s: float,
                  ttl_hours: int) -> Claim | None:
        row = self.rows.get((self.clinic_id, key_hash))
        if row is None or row["claim"] != old or not (
                row["expires_at"] < _now()
                or (row["state"] == "in_flight" and self._lapsed(row))):
            return None
        return self._fresh(key_hash, request_hash, lease_s, ttl_hours)

    def mark_committed(self, claim: Claim) -> None:
        """What the work's transaction does just before its COMMIT."""
        key = (claim.clinic_id, claim.key_hash)
        if self.rows[key]["claim"] == claim.claim:
            self.rows[key] = {**self.rows[key], "state": "committed"}

    def finish(self, claim: Claim, status: int, content_type: str | None, body: str,
               patient_ids: builtins.list[uuid.UUID]) -> bool:
        key = (claim.clinic_id, claim.key_hash)
        row = self.rows.get(key)
        if row is None or row["claim"] != claim.claim or row["state"] == "done":
            return False
        self.rows[key] = {**row, "state": "done", "status_code": status,
                          "content_type": content_type, "body": body,
                          "patient_ids": list(patient_ids)}
        return True

    def release(self, claim: Claim) -> None:
        key = (claim.clinic_id, claim.key_hash)
        row = self.rows.get(key)
        if row is not None and row["claim"] == claim.claim and row["state"] == "in_flight":
            del self.rows[key]

    def scrub(self, patient_ids: builtins.list[uuid.UUID]) -> int:
        clinic = self.clinic_id
        hit = [k for k, r in self.rows.items() if k[0] == clinic and not r["scrubbed"]
               and set(r["patient_ids"]) & set(patient_ids)]
        for k in hit:
            self.rows[k] = {**self.rows[k], "body": None, "scrubbed": True}
        return len(hit)

    def changed_by(self, request_id: str, since: datetime) -> builtins.list[dict[str, Any]]:
        clinic = self.clinic_id
        found = {(e["resource_type"], str(e["resource_id"]), str(e["action"]))
                 for e in self.uow.audit.events
                 if e["clinic_id"] == clinic and e["request_id"] == request_id
                 and e["occurred_at"] >= since and e["action"] not in NOT_CHANGES
                 and e["resource_id"] is not None}
        return [{"type": t, "id": i, "action": a} for t, i, a in sorted(found)]
