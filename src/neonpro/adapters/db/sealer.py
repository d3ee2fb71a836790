"""Background work of long-lived processes (the API): sealing audit events shortly after
they commit, pruning expired commit tokens and idempotency keys once a minute, and signed
checkpoints of every chain's head every few minutes. The CLI seals once before it exits;
cron runs ``neonpro audit checkpoint``.

A loop whose work fails (the database down) backs off exponentially up to a cap and logs
when it starts failing and when it recovers, not every attempt (``adapters/backoff.py``)."""

from __future__ import annotations

import threading
import time

import structlog
from sqlalchemy.exc import SQLAlchemyError

from neonpro.adapters.backoff import Backoff
from neonpro.adapters.checkpoints import CheckpointWriter
from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db.audit import seal_pending
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.housekeeping import EVERY_S, prune_expired
from neonpro.adapters.metrics import Metrics
from neonpro.domain.actors import Actor, SystemActors

log = structlog.get_logger(__name__)

SEAL_BACKOFF_CAP_S = 30.0


class BackgroundSealer:
    """Calls ``seal_pending`` every ``interval`` seconds until stopped."""

    def __init__(self, db: Database, keyring: KeyRing, interval: float = 0.5,
                 actor: Actor = SystemActors.SCHEDULER, metrics: Metrics | None = None,
                 *, backoff_cap: float = SEAL_BACKOFF_CAP_S) -> None:
        self._db = db
        self.sealing = Backoff("audit_seal", interval, cap=backoff_cap, logger=log)
        self.pruning = Backoff("prune", EVERY_S, cap=max(EVERY_S, backoff_cap), logger=log)
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
        wait = self._interval
        while not self._stop.wait(wait):
            try:
                sealed = seal_pending(self._db, self._keyring, self._actor)
                if self._metrics is not None and sealed:
                    self._metrics.audit_sealed.inc(sealed)
                wait = self.sealing.succeeded()
            except (SQLAlchemyError, RuntimeError, OSError) as exc:
                wait = self.sealing.failed(exc)
            if time.monotonic() - pruned_at >= self.pruning.delay:
                pruned_at = time.monotonic()
                try:
                    prune_expired(self._db, self._actor)
                    self.pruning.succeeded()
                except (SQLAlchemyError, RuntimeError, OSError) as exc:
                    self.pruning.failed(exc)

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
        self.backoff = Backoff("audit_checkpoint", interval, cap=interval * 8, logger=log)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-checkpoints",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        wait = self._interval
        while not self._stop.wait(wait):
            wait = self.take()

    def take(self) -> float:
        """Take a checkpoint if a head moved; the delay before the next attempt."""
        try:
            self._writer.take()
        except (SQLAlchemyError, RuntimeError, OSError) as exc:
            return self.backoff.failed(exc)
        return self.backoff.succeeded()

    def stop(self) -> None:
        """Stop, and take a last checkpoint: the heads at shutdown are signed too."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.take()
