"""Idempotency keys, as the services see them (pure data; storage is an adapter)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Claim:
    """The attempt that holds a key: its units of work mark the key when they commit."""

    clinic_id: uuid.UUID
    key_hash: bytes
    claim: uuid.UUID


@dataclass(frozen=True)
class KeyRow:
    """A key as a later attempt finds it."""

    request_hash: bytes
    claim: uuid.UUID
    state: str  # in_flight | committed | done
    lapsed: bool  # its attempt is over: past its lease, or from before a server restart
    expired: bool
    status_code: int | None
    content_type: str | None
    body: str | None
    scrubbed: bool
    request_id: str | None
    created_at: datetime

    @property
    def abandoned(self) -> bool:
        """Claimed, its work not committed, and its attempt over: it may be taken over."""
        return self.state == "in_flight" and self.lapsed
