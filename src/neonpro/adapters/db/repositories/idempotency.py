"""Idempotency keys in SQL: claim a key, take an abandoned one over, store and read answers.

A key moves ``in_flight`` (claimed, in its own committed transaction, so a concurrent
duplicate sees it) -> ``committed`` (set by the work's own transaction, just before its
COMMIT: see ``durability_sql.PRE_COMMIT_MARKED``) -> ``done`` (the answer stored, in its
own transaction). The attempt holding the key is its ``claim``; an attempt whose claim was
taken over can no longer mark the key, so two attempts never both commit their work.
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from neonpro.adapters.crypto import DecryptionError
from neonpro.adapters.db.repositories._base import SqlRepository, log
from neonpro.domain.idempotency import Claim, KeyRow

TABLE = "idempotency_keys"
COLUMN = "body_encrypted"


current_claim: ContextVar[Claim | None] = ContextVar("neonpro_idempotency_claim", default=None)
"""The claim of the request being served: every unit of work that commits marks its key."""


CLAIM = text(
    "INSERT INTO idempotency_keys (clinic_id, key_hash, request_hash, actor_id, claim, state, "
    "server_started, lease_until, expires_at) VALUES (:clinic, :key, :request, :actor, "
    ":claim, 'in_flight', pg_postmaster_start_time(), now() + make_interval(secs => :lease), "
    "now() + make_interval(hours => :ttl)) ON CONFLICT (clinic_id, key_hash) DO NOTHING")
FIND = text(
    "SELECT request_hash, claim, state, (lease_until < now() OR "
    "server_started <> pg_postmaster_start_time()) AS lapsed, expires_at < now() AS expired, "
    "status_code, content_type, body_encrypted, scrubbed_at IS NOT NULL AS scrubbed, "
    "request_id, created_at FROM idempotency_keys WHERE clinic_id = :clinic AND key_hash = :key")
# an abandoned attempt, or an expired key, is taken over by a new claim; the row lock makes a
# take-over wait for (then see) a work transaction that is still committing
TAKE_OVER = text(
    "UPDATE idempotency_keys SET claim = :claim, request_hash = :request, actor_id = :actor, "
    "state = 'in_flight', server_started = pg_postmaster_start_time(), "
    "lease_until = now() + make_interval(secs => :lease), request_id = NULL, "
    "status_code = NULL, content_type = NULL, body_encrypted = NULL, patient_ids = '{}', "
    "scrubbed_at = NULL, created_at = now(), expires_at = now() + make_interval(hours => :ttl) "
    "WHERE clinic_id = :clinic AND key_hash = :key AND claim = :old AND ("
    "  expires_at < now() OR (state = 'in_flight' AND (lease_until < now() "
    "  OR server_started <> pg_postmaster_start_time())))")
FINISH = text(
    "UPDATE idempotency_keys SET state = 'done', status_code = :status, "
    "content_type = :content_type, body_encrypted = :body, patient_ids = :patients "
    "WHERE clinic_id = :clinic AND key_hash = :key AND claim = :claim AND state <> 'done'",
).bindparams(bindparam("patients", type_=ARRAY(UUID(as_uuid=True))))
RELEASE = text(
    "DELETE FROM idempotency_keys WHERE clinic_id = :clinic AND key_hash = :key "
    "AND claim = :claim AND state = 'in_flight'")
SCRUB = text(
    "UPDATE idempotency_keys SET body_encrypted = NULL, scrubbed_at = now() "
    "WHERE clinic_id = :clinic AND patient_ids && :ids AND scrubbed_at IS NULL",
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))
# what the attempt whose work committed changed, from its audit events (same request id)
CHANGED = text(
    "SELECT DISTINCT resource_type, resource_id, action FROM audit_events "
    "WHERE clinic_id = :clinic AND request_id = :request_id AND occurred_at >= :since "
    "AND action NOT IN ('VIEW', 'EXPORT', 'LEGAL_HOLD_READ') AND resource_id IS NOT NULL "
    "ORDER BY resource_type, resource_id, action")
PRUNE = text("DELETE FROM idempotency_keys WHERE expires_at < now()")


class SqlIdempotencyRepository(SqlRepository):
    """The idempotency keys of one unit of work's clinic."""

    __slots__ = ()

    def claim(self, key_hash: bytes, request_hash: bytes, lease_s: float,
              ttl_hours: int) -> Claim | None:
        """A new claim on a key nobody holds; None if the key is there already."""
        claim = uuid.uuid4()
        result = self._execute(CLAIM, {
            "clinic": self.clinic_id, "key": key_hash, "request": request_hash,
            "actor": self._uow.actor.id, "claim": claim, "lease": lease_s, "ttl": ttl_hours})
        return Claim(self.clinic_id, key_hash, claim) if result.rowcount == 1 else None

    def find(self, key_hash: bytes) -> KeyRow | None:
        row = self._execute(FIND, {"clinic": self.clinic_id, "key": key_hash}).first()
        if row is None:
            return None
        body = None
        if row.body_encrypted is not None:
            try:
                body = self._uow.cipher.decrypt(row.body_encrypted, table=TABLE, column=COLUMN,
                                                row_id=row.claim)
            except DecryptionError:  # its field key was removed since: the answer is gone
                log.warning("idempotent_answer_undecryptable")
        return KeyRow(row.request_hash, row.claim, row.state, row.lapsed, row.expired,
                      row.status_code, row.content_type, body, row.scrubbed, row.request_id,
                      row.created_at)

    def take_over(self, key_hash: bytes, old: uuid.UUID, request_hash: bytes, lease_s: float,
                  ttl_hours: int) -> Claim | None:
        """A new claim on an abandoned attempt or an expired key; None if it is not (any
        more) abandoned."""
        claim = uuid.uuid4()
        result = self._execute(TAKE_OVER, {
            "clinic": self.clinic_id, "key": key_hash, "old": old, "claim": claim,
            "request": request_hash, "actor": self._uow.actor.id, "lease": lease_s,
            "ttl": ttl_hours})
        return Claim(self.clinic_id, key_hash, claim) if result.rowcount == 1 else None

    def finish(self, claim: Claim, status: int, content_type: str | None, body: str,
               patient_ids: list[uuid.UUID]) -> bool:
        """Store the answer of ``claim`` (encrypted: it may hold personal data)."""
        sealed = self._uow.cipher.encrypt(body, table=TABLE, column=COLUMN, row_id=claim.claim)
        result = self._execute(FINISH, {
            "clinic": claim.clinic_id, "key": claim.key_hash, "claim": claim.claim,
            "status": status, "content_type": content_type, "body": sealed,
            "patients": patient_ids})
        return result.rowcount == 1

    def release(self, claim: Claim) -> None:
        """Give the key back when the attempt failed before its work committed."""
        self._execute(RELEASE, {"clinic": claim.clinic_id, "key": claim.key_hash,
                                "claim": claim.claim})

    def scrub(self, patient_ids: list[uuid.UUID]) -> int:
        """Remove the stored answers naming any of ``patient_ids`` (their erasure)."""
        return self._execute(SCRUB, {"clinic": self.clinic_id, "ids": patient_ids}).rowcount

    def changed_by(self, request_id: str, since: datetime) -> list[dict[str, Any]]:
        rows = self._execute(CHANGED, {"clinic": self.clinic_id, "request_id": request_id,
                                       "since": since})
        return [{"type": r.resource_type, "id": r.resource_id, "action": r.action}
                for r in rows]

