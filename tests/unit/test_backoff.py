"""Background loops facing a dead database back off and log state changes, not attempts
(issue 13, defect 10: the API's sealer logged a failure every 0.5 s for ever)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from neonpro.adapters import feed as feed_module
from neonpro.adapters.backoff import Backoff
from neonpro.adapters.db import sealer as sealer_module
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.sealer import BackgroundCheckpointer, BackgroundSealer
from neonpro.adapters.feed import ChangeFeed, FeedConfig
from tests.conftest import make_keyring, make_settings

DEAD_URL = "postgresql://postgres@127.0.0.1:1/none"  # nothing listens on port 1


def _events(logs: list[dict[str, Any]], prefix: str) -> list[str]:
    return [str(e["event"]) for e in logs if str(e["event"]).startswith(prefix)]


def test_delays_double_up_to_the_cap_and_reset_on_success() -> None:
    with capture_logs() as logs:
        backoff = Backoff("loop", 0.5, cap=4.0)
        assert backoff.delay == 0.5
        delays = [backoff.failed(OSError()) for _ in range(6)]
        assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
        assert backoff.succeeded() == 0.5
        assert backoff.delay == 0.5
    # one line when it starts failing, one when it recovers: not one per attempt
    assert _events(logs, "loop_") == ["loop_failing", "loop_recovered"]
    assert logs[-1]["failed_attempts"] == 6


def test_a_new_kind_of_error_is_a_new_state() -> None:
    with capture_logs() as logs:
        backoff = Backoff("loop", 0.1)
        backoff.failed(OSError())
        backoff.failed(OSError())
        backoff.failed(TimeoutError())
    assert [e["error"] for e in logs] == ["OSError", "TimeoutError"]


@pytest.mark.slow
def test_the_sealer_facing_a_dead_database_backs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[float] = []
    real = sealer_module.seal_pending

    def counting(*args: Any, **kwargs: Any) -> int:
        attempts.append(time.monotonic())
        return real(*args, **kwargs)

    monkeypatch.setattr(sealer_module, "seal_pending", counting)
    db = Database(make_settings(DEAD_URL))
    sealer = BackgroundSealer(db, make_keyring(), interval=0.02, backoff_cap=0.4)
    try:
        with capture_logs() as logs:
            sealer.start()
            time.sleep(2.0)
            sealer._stop.set()  # not stop(): its last seal would fail on the dead database
            sealer._thread.join(timeout=30)
    finally:
        db.close()
    # at a fixed 0.02 s pace that was about 100 attempts and 100 log lines; backing off
    # (0.02, 0.04 ... 0.4, 0.4 ...) it is about ten, and one line
    assert 2 <= len(attempts) <= 15, len(attempts)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert max(gaps) >= 0.3  # reached the cap
    assert _events(logs, "audit_seal") == ["audit_seal_failing"]
    assert sealer.sealing.failing


def test_the_sealer_logs_its_recovery_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    done = threading.Event()

    def flaky(*_args: Any, **_kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] <= 3:
            raise RuntimeError
        if calls["n"] >= 6:
            done.set()
        return 0

    monkeypatch.setattr(sealer_module, "seal_pending", flaky)
    db = Database(make_settings(DEAD_URL))
    sealer = BackgroundSealer(db, make_keyring(), interval=0.01, backoff_cap=0.05)
    try:
        with capture_logs() as logs:
            sealer.start()
            assert done.wait(10)
            sealer.stop()
    finally:
        db.close()
    assert _events(logs, "audit_seal") == ["audit_seal_failing", "audit_seal_recovered"]
    assert not sealer.sealing.failing


class _DeadWriter:
    def __init__(self) -> None:
        self.attempts = 0

    def take(self) -> None:
        self.attempts += 1
        raise OSError


def test_the_checkpointer_backs_off() -> None:
    writer = _DeadWriter()
    checkpointer = BackgroundCheckpointer(writer, interval=0.02)  # type: ignore[arg-type]
    with capture_logs() as logs:
        checkpointer.start()
        time.sleep(1.5)
        checkpointer.stop()
    # 0.02, 0.04, 0.08, 0.16 (the cap: 8 intervals) ...: about ten, not 75
    assert writer.attempts <= 15, writer.attempts
    assert _events(logs, "audit_checkpoint") == ["audit_checkpoint_failing"]


def test_the_change_feed_reconnects_with_backoff_and_one_log_line() -> None:
    attempts: list[float] = []
    real = feed_module.psycopg.AsyncConnection.connect

    async def counting(*args: Any, **kwargs: Any) -> Any:
        attempts.append(time.monotonic())
        return await real(*args, **kwargs)

    async def run() -> None:
        feed = ChangeFeed(DEAD_URL, FeedConfig(reconnect_seconds=0.02,
                                               connect_timeout_seconds=0.05))
        await feed.start()
        await asyncio.sleep(1.5)
        await feed.stop()

    with capture_logs() as logs, pytest.MonkeyPatch.context() as mp:
        mp.setattr(feed_module.psycopg.AsyncConnection, "connect", counting)
        asyncio.run(run())
    assert 2 <= len(attempts) <= 12, len(attempts)
    assert _events(logs, "feed_listen") == ["feed_listen_failing"]
