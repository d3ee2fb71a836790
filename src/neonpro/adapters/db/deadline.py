"""A request's deadline, seen by every unit of work the request opens.

The API sets one per request (:class:`~neonpro.entrypoints.api.resilience.RequestDeadline`);
the CLI sets none. A unit of work bounds its statements, and its COMMIT, by the time left.
At the deadline the request is answered 503 whatever it is doing:

* no commit has begun: ``request_timeout``; its transaction is rolled back when it reaches
  the commit, and it opens no new unit of work: nothing was written;
* a commit is under way (a synchronous standby that does not answer, say), or one has
  finished but the answer is not out yet: ``commit_outcome_unknown``; the client retries
  with its ``Idempotency-Key``, which answers what really happened.

Either way nothing commits for the request afterwards. The state changes under a lock
because the deadline is checked on the event loop (the middleware) and in the worker thread
(the commit) at the same time.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from enum import Enum

RUNNING, COMMITTING, COMMITTED, EXPIRED = "running", "committing", "committed", "expired"


# RequestTimedOut and CommitOutcomeUnknown stay adapter-level, not DomainErrors: they are the
# database transport failing (a retry may succeed), answered 503 with the other
# database-unavailable errors (problems._unavailable), never a rule of the domain.
class RequestTimedOut(Exception):
    """The request's deadline passed before its commit began; nothing was written."""


class CommitOutcomeUnknown(Exception):
    """The COMMIT's acknowledgement was lost and the database could not say (in time, or
    at all: it restarted since) whether the transaction committed: the client retries with
    its idempotency key, or reads before retrying."""


class Outcome(Enum):
    COMMITTED = "committed"
    ABORTED = "aborted"


class Deadline:
    """``seconds`` from now; :meth:`expire` and :meth:`begin_commit` exclude each other.

    ``retried``: the request is a read that the API runs again whole if its database
    connection breaks, so a lost COMMIT acknowledgement needs no resolving (a second read
    only adds a second audit event of the read).
    """

    def __init__(self, seconds: float, *, retried: bool = False) -> None:
        self.seconds = seconds
        self.retried = retried
        self.at = time.monotonic() + seconds
        self._state = RUNNING
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def expired(self) -> bool:
        return self._state == EXPIRED

    def expire(self) -> str:
        """Called at the deadline: the state found (``running``: nothing was committed;
        ``committing`` or ``committed``: something may have been). From now on no unit of
        work of the request starts or commits."""
        with self._lock:
            found, self._state = self._state, EXPIRED
            return found

    def begin_commit(self) -> bool:
        """Called before COMMIT: False if the request was already answered 503."""
        with self._lock:
            if self._state == EXPIRED:
                return False
            self._state = COMMITTING
            return True

    def end_commit(self) -> None:
        """After COMMIT, whatever its outcome."""
        with self._lock:
            if self._state == COMMITTING:
                self._state = COMMITTED


current: ContextVar[Deadline | None] = ContextVar("neonpro_request_deadline", default=None)
