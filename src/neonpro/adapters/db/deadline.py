"""A request's deadline, seen by every unit of work the request opens.

The API sets one per request (:class:`~neonpro.entrypoints.api.resilience.RequestDeadline`);
the CLI sets none. A unit of work bounds its statements by the time left, and a request
that ran out of time before its commit began is answered 503 while its transaction is
rolled back: a client never gets an error for a write that was kept. Once a commit has
begun, the request is allowed to finish and its real answer is sent.

The state changes under a lock because the deadline is checked on the event loop (the
middleware) and in the worker thread (the commit) at the same time.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from enum import Enum

_RUNNING, _COMMITTING, _COMMITTED, _EXPIRED = "running", "committing", "committed", "expired"


class RequestTimedOut(Exception):
    """The request's deadline passed before its commit began; nothing was written."""


class CommitOutcomeUnknown(Exception):
    """The connection broke during COMMIT and the database could not be asked in time
    whether the transaction committed: the client must re-read before retrying."""


class Outcome(Enum):
    COMMITTED = "committed"
    ABORTED = "aborted"


class Deadline:
    """``seconds`` from now; :meth:`expire` and :meth:`begin_commit` exclude each other."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._state = _RUNNING
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self._state == _EXPIRED

    def expire(self) -> bool:
        """Called at the deadline: True if the request may be answered 503 now (no commit
        has begun); False if a commit is under way or done (wait for the real answer)."""
        with self._lock:
            if self._state == _RUNNING:
                self._state = _EXPIRED
            return self._state == _EXPIRED

    def begin_commit(self) -> bool:
        """Called before COMMIT: False if the request was already answered 503."""
        with self._lock:
            if self._state == _EXPIRED:
                return False
            self._state = _COMMITTING
            return True

    def end_commit(self) -> None:
        """After COMMIT, whatever its outcome: the request's own answer goes out."""
        with self._lock:
            self._state = _COMMITTED


current: ContextVar[Deadline | None] = ContextVar("neonpro_request_deadline", default=None)
