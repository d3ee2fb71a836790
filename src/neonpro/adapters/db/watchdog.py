"""Cutting a COMMIT at the request's deadline (see :class:`CommitWatchdog`)."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any

import psycopg
import structlog

log = structlog.get_logger(__name__)


class CommitWatchdog:
    """Cuts a COMMIT that is still waiting after ``seconds`` (for a synchronous standby
    that does not answer, say) by cancelling it from another thread.

    ``statement_timeout`` does not do it: the server stops the statement timer before it
    commits. A cancelled wait for a synchronous standby ends with a warning and the
    transaction committed locally (it cannot be undone any more); any other cancelled
    COMMIT ends with an error and the transaction rolled back. Either way the thread and
    the connection are free again. A connection whose COMMIT was cancelled is discarded
    afterwards (:attr:`fired`): a cancel arriving late must not hit the next statement.

    Arming costs a lock and a heap push: one shared thread (:data:`_ALARMS`) waits for the
    earliest deadline, not a thread per COMMIT."""

    def __init__(self, dbapi_connection: Any, seconds: float) -> None:
        self._connection = dbapi_connection
        self._lock = threading.Lock()
        self._armed = True
        self.fired = False
        _ALARMS.arm(time.monotonic() + max(seconds, 0.0), self)

    def ring(self) -> None:
        with self._lock:
            if not self._armed:
                return
            self.fired = True
            try:
                self._connection.cancel()
            except psycopg.Error as exc:
                log.warning("commit_cancel_failed", error=type(exc).__name__)

    def stop(self) -> bool:
        """Disarm (the COMMIT returned); True if it had fired."""
        with self._lock:
            self._armed = False
            self._connection = None  # the alarm may wait for its time: hold nothing
        return self.fired


class _Alarms:
    """One daemon thread ringing watchdogs at their time; disarmed ones ring as no-ops."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, CommitWatchdog]] = []
        self._count = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, when: float, watchdog: CommitWatchdog) -> None:
        with self._wake:
            heapq.heappush(self._heap, (when, next(self._count), watchdog))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="commit-watchdog",
                                                daemon=True)
                self._thread.start()
            if self._heap[0][2] is watchdog:  # only an earlier alarm changes its wait
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _when, _n, watchdog = heapq.heappop(self._heap)
            watchdog.ring()


_ALARMS = _Alarms()
