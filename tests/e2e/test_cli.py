"""The CLI end to end, as a user runs it (a subprocess with NEONPRO_DATABASE_URL)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.db import migrate
from neonpro.adapters.db.database import normalise_url

BIN = str(Path(sys.executable).parent / "neonpro")


def run(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEONPRO_DATABASE_URL": url, "NEONPRO_ENVIRONMENT": "test"}
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def test_db_lifecycle(fresh_database_url: str) -> None:
    url = fresh_database_url
    current = run(url, "db", "current", "--json")
    assert current.returncode == 0, current.stderr
    assert json.loads(current.stdout)["current"] == []

    unhealthy = run(url, "db", "health")
    assert unhealthy.returncode == 1
    assert json.loads(unhealthy.stdout)["checks"]["migrations"]["ok"] is False

    up = run(url, "db", "upgrade")
    assert up.returncode == 0, up.stderr
    head = migrate.head_revision()
    assert head is not None
    assert f"at {head}" in up.stdout

    healthy = run(url, "db", "health")
    assert healthy.returncode == 0, healthy.stdout
    assert json.loads(healthy.stdout)["ok"] is True

    history = run(url, "db", "history")
    assert head in history.stdout

    down = run(url, "db", "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert "at base" in down.stdout


def test_db_check_passes_at_head(admin_url: str) -> None:
    result = run(admin_url, "db", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no drift" in result.stdout


def test_db_check_and_health_name_hand_changes_of_the_live_database(
    fresh_database_url: str,
) -> None:
    """Issue 13, defect 8: a column added and a policy dropped by hand passed both."""
    url = fresh_database_url
    assert run(url, "db", "upgrade").returncode == 0
    clean = run(url, "db", "check")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "the live database matches the migrations" in clean.stdout

    engine = create_engine(normalise_url(url), poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE patients ADD COLUMN hand_notes text"))
        conn.execute(text("DROP POLICY patients_tenant_delete ON patients"))
    engine.dispose()

    check = run(url, "db", "check")
    assert check.returncode == 1, check.stdout
    lines = [x for x in check.stdout.splitlines() if x.startswith("! live database:")]
    assert lines == [
        "! live database: column patients.hand_notes: in the live database, not in the "
        "migrations",
        "! live database: policy patients.patients_tenant_delete: missing from the live "
        "database",
    ]
    assert "2 difference(s) between the live database and the migrations" in check.stderr
    assert "Traceback" not in check.stderr

    health = run(url, "db", "health")
    assert health.returncode == 1
    report = json.loads(health.stdout)
    assert report["checks"]["drift"]["ok"] is False
    assert len(report["checks"]["drift"]["differences"]) == 2


def test_unreachable_database_is_a_clean_error() -> None:
    result = run("postgresql://nobody@127.0.0.1:1/none", "db", "current")
    assert result.returncode == 1
    assert "database error" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_settings_are_a_clean_error(fresh_database_url: str) -> None:
    env_bad = {"NEONPRO_POOL_SIZE": "zero"}
    env = {**os.environ, "NEONPRO_DATABASE_URL": fresh_database_url, **env_bad}
    result = subprocess.run([BIN, "db", "current"], capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert result.returncode == 1
    assert "invalid settings: pool_size" in result.stderr
    assert "Traceback" not in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_migrates_reports_healthy_and_stops_on_sigterm(fresh_database_url: str,
                                                             workers: int) -> None:
    """One process, or a supervisor and its workers (the supervisor seals the audit trail;
    the workers answer): ready, healthy, and all gone after SIGTERM."""
    port = _free_port()
    env = {**os.environ, "NEONPRO_DATABASE_URL": fresh_database_url, "NEONPRO_ENVIRONMENT": "test"}
    proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--workers", str(workers)],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers_seen: list[int] = []
    try:
        body = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and body is None:
            try:
                ready = f"http://127.0.0.1:{port}/health/ready"
                with urllib.request.urlopen(ready, timeout=5) as r:  # noqa: S310
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.2)
        assert body == {"status": "ready"}, "API never became ready"
        # an operator on the same host (loopback, no token set) reads the checks
        details = f"http://127.0.0.1:{port}/health/details"
        with urllib.request.urlopen(details, timeout=5) as r:  # noqa: S310
            body = json.loads(r.read())
        assert body["ok"] is True
        assert body["checks"]["migrations"]["current"] == [migrate.head_revision()]
        workers_seen = [p for p in _children(proc.pid) if p != proc.pid]
    finally:
        proc.send_signal(signal.SIGTERM)
        stdout, _stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "healthy" in stdout
    assert f"{workers} worker process" in stdout
    if workers > 1:  # uvicorn's supervisor: one process per worker (a spawn helper aside)
        assert len(workers_seen) >= workers
    gone_by = time.monotonic() + 10  # the resource tracker leaves when its pipe closes
    while any(Path(f"/proc/{p}").exists() for p in workers_seen) and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert [p for p in workers_seen if Path(f"/proc/{p}").exists()] == []
