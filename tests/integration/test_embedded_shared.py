"""The embedded PostgreSQL shared by processes (issue 13, defect 10): a CLI command that
started it stopped it on exit although ``./dev run`` had attached meanwhile, and the API
stayed unready for ever. Real processes, as the issue is about processes; and a server
stopped by hand under the API is brought back by its readiness check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url

from neonpro.adapters.db.database import Database
from neonpro.adapters.db.embedded import EmbeddedPostgres
from neonpro.adapters.db.health import check_health
from neonpro.config import Environment, Settings

ROOT = Path(__file__).parents[2]


class User:
    """One process using the embedded server (tests/embedded_user.py)."""

    def __init__(self, base: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEONPRO_")}
        env["NEONPRO_ENVIRONMENT"] = "test"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.embedded_user", str(base)], cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        self.port = int(self._line().split()[1])

    def _line(self) -> str:
        assert self.proc.stdout is not None
        while True:  # log lines may come between the answers
            line = self.proc.stdout.readline()
            assert line, f"the user process ended (rc {self.proc.poll()})"
            if line.startswith(">> "):
                return line[3:].strip()

    def ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line()

    def exit(self) -> None:
        assert self.ask("exit") == "closed"
        assert self.proc.wait(timeout=60) == 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="neonpro-shared-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        EmbeddedPostgres(path).destroy()


def _running(base: Path) -> bool:
    return EmbeddedPostgres(base).is_running


def _wait_stopped(base: Path, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _running(base):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_the_server_stays_up_while_another_process_uses_it(base: Path) -> None:
    starter = User(base)  # a CLI command: no server ran, it starts one
    attached = User(base)  # ./dev run, meanwhile
    assert attached.port == starter.port
    assert attached.ask("query") == "ok"

    starter.exit()
    assert _running(base), "the starter stopped the server under another user"
    assert attached.ask("query") == "ok"

    attached.exit()  # the last user leaves: the server stops
    assert _wait_stopped(base)


@pytest.mark.slow
def test_a_user_killed_with_sigkill_does_not_keep_the_server_up(base: Path) -> None:
    starter = User(base)
    attached = User(base)
    attached.kill()

    starter.exit()
    assert _wait_stopped(base), "a dead user kept the server running"


@pytest.mark.slow
def test_the_starter_killed_leaves_the_server_to_the_others(base: Path) -> None:
    starter = User(base)
    attached = User(base)
    starter.kill()
    assert attached.ask("query") == "ok"
    attached.exit()
    assert _wait_stopped(base)


def test_a_server_started_by_hand_is_left_running(base: Path) -> None:
    by_hand = EmbeddedPostgres(base)
    by_hand.start()
    by_hand._unregister()  # (as if another tool had started it: no user)
    (base / "started-by-neonpro").unlink()
    user = User(base)
    user.exit()
    assert _running(base)


def test_a_server_stopped_by_hand_under_the_api_is_brought_back(base: Path) -> None:
    settings = Settings(environment=Environment.TEST, embedded_dir=base, database_url=None,
                        _env_file=None)  # type: ignore[call-arg]
    db = Database(settings)
    try:
        port = make_url(db.owner_url).port
        EmbeddedPostgres(base).stop(force=True)  # pg_ctl stop by hand
        assert not _running(base)

        report = check_health(db)  # what /health/ready runs
        assert report["checks"]["connectivity"]["ok"] is True
        assert make_url(EmbeddedPostgres(base).url()).port == port  # the pools' URLs hold
    finally:
        db.close()
    assert _wait_stopped(base)  # brought back by neonpro: its last user stops it
