"""How background loops face a failing dependency (the database down, a disk full).

A loop that retried at its normal pace against a dead database logged a failure every
half second (issue 13, defect 10). :class:`Backoff` gives the delay before the next
attempt, doubling after each consecutive failure up to a cap, and logs **state changes
only**: one warning when the loop starts failing (or the error changes kind), one info
line when it recovers, with how many attempts failed and for how long.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class Backoff:
    """Delays for one loop: ``base`` while healthy; after ``n`` consecutive failures
    ``min(first * 2 ** (n - 1), cap)``."""

    def __init__(self, name: str, base: float, *, first: float | None = None,
                 cap: float = 30.0, logger: Any = None) -> None:
        self.name = name
        self.base = base
        self.first = base if first is None else first
        self.cap = max(cap, self.first)
        self.failures = 0
        self._error: str | None = None
        self._since = 0.0
        self._log = logger if logger is not None else log

    @property
    def failing(self) -> bool:
        return self.failures > 0

    @property
    def delay(self) -> float:
        """Seconds to wait before the next attempt."""
        if not self.failures:
            return self.base
        return float(min(self.first * 2 ** min(self.failures - 1, 30), self.cap))

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; the delay before the next one."""
        error = type(exc).__name__
        self.failures += 1
        if self.failures == 1:
            self._since = time.monotonic()
        if self.failures == 1 or error != self._error:
            self._log.warning(f"{self.name}_failing", error=error,
                              retry_in_s=round(self.delay, 3), max_retry_in_s=self.cap)
        self._error = error
        return self.delay

    def succeeded(self) -> float:
        """Record a successful attempt; the delay before the next one."""
        if self.failures:
            self._log.info(f"{self.name}_recovered", failed_attempts=self.failures,
                           down_s=round(time.monotonic() - self._since, 1))
        self.failures = 0
        self._error = None
        return self.base
