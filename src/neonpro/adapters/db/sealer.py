"""Background work of long-lived processes (the API): sealing audit events shortly after
they commit, pruning expired commit tokens and idempotency keys once a minute, and signed
checkpoints of every chain's head every few minutes. The CLI seals once before it exits;
cron runs ``neonpro audit checkpoint``."""

from __future__ import annotations

import threading
import time

import structlog
from sqlalchemy.exc import SQLAlchemyError

from neonpro.adapters.checkpoints import CheckpointWriter
from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db.audit import seal_pending
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.housekeeping import EVERY_S, prune_expired
from neonpro.adapters.metrics import Metrics
from neonpro.domain.actors import Actor, SystemActors

log = structlog.get_logger(__name__)


class BackgroundSealer:
    """Calls ``seal_pending`` every ``interval`` seconds until stopped."""

    def __init__(self, db: Database, keyring: KeyRing, interval: float = 0.5,
                 actor: Actor = SystemActors.SCHEDULER, metrics: Metrics | None = None) -> None:
        self._db = db
        self._keyring = keyring
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
                sealed = seal_pending(self._db, self._keyring, self._actor)
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
        seal_pending(self._db, self._keyring, self._actor)


class BackgroundCheckpointer:
    """Takes a checkpoint every ``interval`` seconds (when a head moved) until stopped."""

    def __init__(self, writer: CheckpointWriter, interval: float) -> None:
        self._writer = writer
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-checkpoints",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.take()

    def take(self) -> None:
        try:
            self._writer.take()
        except (SQLAlchemyError, RuntimeError, OSError) as exc:
            log.warning("audit_checkpoint_failed", error=type(exc).__name__)

    def stop(self) -> None:
        """Stop, and take a last checkpoint: the heads at shutdown are signed too."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.take()
