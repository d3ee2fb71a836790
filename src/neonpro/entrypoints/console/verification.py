"""The audit chain's verification as the console shows it: the last result, not a fresh
recomputation per page.

Verifying recomputes every HMAC of the clinic's chains (about 100,000 events a second,
docs/performance.md): far over a page's 200 ms budget once a clinic has a year of events.
So the pages show the last verification this process made, with its time, and start a new
one in the background when that one is older than :data:`MAX_AGE_S` (or missing); the
audit page's "Verificar agora" runs one while the DPO waits. The result is the same
``verify_clinic`` the API's ``GET /audit/verify`` answers."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.services import audit as audit_svc

log = structlog.get_logger(__name__)
MAX_AGE_S = 300.0


@dataclass(frozen=True)
class Verified:
    """One verification: ``ok``, the events sealed and unsealed, the first broken link."""

    report: dict[str, Any]
    at: datetime

    @property
    def ok(self) -> bool:
        return bool(self.report.get("ok"))

    @property
    def sealed(self) -> int:
        return int(self.report.get("sealed", 0))

    @property
    def unsealed(self) -> int:
        return int(self.report.get("unsealed", 0))

    @property
    def broken_at(self) -> int | None:
        value = self.report.get("broken_at")
        ledger = self.report.get("erasure_ledger") or {}
        return value if value is not None else ledger.get("broken_at")

    @property
    def ledger_ok(self) -> bool:
        return bool((self.report.get("erasure_ledger") or {"ok": True}).get("ok"))


class ChainStatus:
    """The last verification per clinic, refreshed in the background when stale."""

    def __init__(self, max_age_s: float = MAX_AGE_S) -> None:
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._results: dict[uuid.UUID, Verified] = {}
        self._running: set[uuid.UUID] = set()

    def latest(self, box: Container, actor: Actor, clinic: uuid.UUID) -> Verified | None:
        """The last result (None before the first), a refresh started if it is stale."""
        with self._lock:
            found = self._results.get(clinic)
            stale = found is None or (
                datetime.now(UTC) - found.at).total_seconds() > self._max_age_s
            start = stale and clinic not in self._running
            if start:
                self._running.add(clinic)
        if start:
            threading.Thread(target=self._refresh, args=(box, actor, clinic), daemon=True,
                             name="console-verify").start()
        return found

    def running(self, clinic: uuid.UUID) -> bool:
        with self._lock:
            return clinic in self._running

    def verify_now(self, box: Container, actor: Actor, clinic: uuid.UUID) -> Verified:
        """Verify while the caller waits, and keep the result."""
        result = Verified(audit_svc.verify_clinic(box.audit_chain, actor, clinic),
                          datetime.now(UTC))
        with self._lock:
            self._results[clinic] = result
        return result

    def _refresh(self, box: Container, actor: Actor, clinic: uuid.UUID) -> None:
        try:
            self.verify_now(box, actor, clinic)
        except Exception as failure:  # noqa: BLE001  (a background refresh: the next page retries)
            log.warning("console_verify_failed", error=type(failure).__name__)
        finally:
            with self._lock:
                self._running.discard(clinic)
