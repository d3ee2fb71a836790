"""A background thread that seals audit events shortly after they commit (long-lived
processes such as the API; the CLI seals once before it exits), and prunes expired commit
tokens and idempotency keys once a minute."""

from __future__ import annotations

import threading
import time

import structlog
from sqlalchemy.exc import SQLAlchemyError

from neonpro.adapters.db.audit import seal_pending
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.housekeeping import EVERY_S, prune_expired
from neonpro.adapters.metrics import Metrics
from neonpro.domain.actors import Actor, SystemActors

log = structlog.get_logger(__name__)


class BackgroundSealer:
    """Calls ``seal_pending`` every ``interval`` seconds until stopped."""

    def __init__(self, db: Database, interval: float = 0.5,
                 actor: Actor = SystemActors.SCHEDULER, metrics: Metrics | None = None) -> None:
        self._db = db
        self._metrics = metrics
        self._interval = interval
        self._actor = actor
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        pruned_at = time.monotonic()
        while not self._stop.wait(self._interval):
            try:
                sealed = seal_pending(self._db, self._actor)
                if self._metrics is not None and sealed:
                    self._metrics.audit_sealed.inc(sealed)
            except (SQLAlchemyError, RuntimeError) as exc:
                log.warning("audit_seal_failed", error=type(exc).__name__)
            if time.monotonic() - pruned_at >= EVERY_S:
                pruned_at = time.monotonic()
                try:
                    prune_expired(self._db, self._actor)
                except (SQLAlchemyError, RuntimeError) as exc:
                    log.warning("prune_failed", error=type(exc).__name__)

    def stop(self) -> None:
        """Stop and seal one last time, so nothing stays unsealed after shutdown."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        seal_pending(self._db, self._actor)
