"""The commit watchdog cancels a COMMIT still running at its time, and only then."""

from __future__ import annotations

import threading

from neonpro.adapters.db.watchdog import CommitWatchdog


class _Connection:
    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()


def test_a_commit_still_running_is_cancelled_at_its_time() -> None:
    slow = _Connection()
    watchdog = CommitWatchdog(slow, 0.05)
    assert slow.cancelled.wait(2)
    assert watchdog.stop() is True


def test_a_commit_that_returned_in_time_is_left_alone() -> None:
    quick, later = _Connection(), _Connection()
    early = CommitWatchdog(quick, 0.2)
    assert early.stop() is False
    last = CommitWatchdog(later, 0.3)  # rings after the first one's time has passed
    assert later.cancelled.wait(2)
    assert not quick.cancelled.is_set()
    assert last.fired


def test_many_watchdogs_share_one_thread() -> None:
    before = threading.active_count()
    dogs = [CommitWatchdog(_Connection(), 30) for _ in range(200)]
    assert threading.active_count() <= before + 1
    assert not any(dog.stop() for dog in dogs)
