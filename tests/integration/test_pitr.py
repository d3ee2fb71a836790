"""Point-in-time recovery on a private cluster this test starts itself (as the account that
owns it: ``postgres`` when run as root): write rows, note the time, write more, destroy
the data, restore to the noted time, and find exactly the rows written before it."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.config import Environment, Settings
from neonpro.services import backup, pitr
from tests.conftest import make_keyring, make_settings

pytestmark = pytest.mark.slow


def _requirements() -> tuple[str, Path] | str:
    if shutil.which("pgbackrest") is None:
        return "pgbackrest is not installed (apt-get install pgbackrest; .ci/run does)"
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        return "no PostgreSQL server binaries under /usr/lib/postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, but there is no postgres account to run the cluster"
        return "postgres", bins[0].parent
    return pwd.getpwuid(os.geteuid()).pw_name, bins[0].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def cluster() -> Iterator[tuple[Path, int, Path, Path]]:
    found = _requirements()
    if isinstance(found, str):
        if os.environ.get("NEONPRO_REQUIRE_PITR"):
            pytest.fail(found)  # .ci/run installs pgbackrest: there this test must run
        pytest.skip(found)
    user, bin_dir = found
    base = Path(tempfile.mkdtemp(prefix="neonpro-pitr-", dir="/tmp"))
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, user, user)
    pgdata, port = base / "data", _free_port()

    def as_owner(*args: str) -> None:
        cmd = list(args) if os.geteuid() != 0 else ["runuser", "-u", user, "--", *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300, cwd="/")

    as_owner(str(bin_dir / "initdb"), "-D", str(pgdata), "-U", user, "--auth=trust",
             "--no-sync")
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                   f"unix_socket_directories = '{base}'\nfsync = off\n")
    as_owner(str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-w", "-l", str(base / "start.log"),
             "start")
    try:
        yield pgdata, port, base, bin_dir
    finally:
        subprocess.run(
            [*(["runuser", "-u", user, "--"] if os.geteuid() == 0 else []),
             str(bin_dir / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "stop"],
            check=False, capture_output=True, timeout=120, cwd="/")
        shutil.rmtree(base, ignore_errors=True)


def _conn(base: Path, port: int) -> psycopg.Connection[tuple[object, ...]]:
    user = pwd.getpwuid(Path(base).stat().st_uid).pw_name
    return psycopg.connect(f"host={base} port={port} user={user} dbname=postgres",
                           autocommit=True)


def test_restore_to_a_point_in_time(cluster: tuple[Path, int, Path, Path]) -> None:
    pgdata, port, base, bin_dir = cluster
    settings = Settings(environment=Environment.TEST, pitr_dir=base / "pitr",
                        _env_file=None)  # type: ignore[call-arg]
    pitr.setup(settings, pgdata, port, socket_dir=base, bin_dir=bin_dir)
    with _conn(base, port) as conn:
        conn.execute("CREATE TABLE visits (n int PRIMARY KEY)")
        conn.execute("INSERT INTO visits SELECT generate_series(1, 100)")
    label = pitr.base_backup(settings)["label"]
    assert label in {b["label"] for b in pitr.info(settings)["backups"]}

    with _conn(base, port) as conn:
        conn.execute("INSERT INTO visits SELECT generate_series(101, 200)")
    time.sleep(1.0)
    noted = datetime.now(UTC)
    time.sleep(1.0)
    with _conn(base, port) as conn:
        conn.execute("INSERT INTO visits SELECT generate_series(201, 300)")
        conn.execute("DROP TABLE visits")  # the disaster

    done = pitr.restore(settings, noted)
    assert done["seconds"] > 0
    with _conn(base, port) as conn:
        row = conn.execute("SELECT count(*), min(n), max(n) FROM visits").fetchone()
        in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    assert row == (200, 1, 200)  # everything before the noted time, nothing after
    assert in_recovery == (False,)  # promoted: writable again
    with _conn(base, port) as conn:
        conn.execute("INSERT INTO visits VALUES (201)")


def test_drill_with_wal_archiving_measures_rto_and_rpo(
        cluster: tuple[Path, int, Path, Path]) -> None:
    pgdata, port, base, bin_dir = cluster
    user = pwd.getpwuid(base.stat().st_uid).pw_name
    url = f"postgresql://{user}@127.0.0.1:{port}/neonpro"
    with _conn(base, port) as conn:
        conn.execute("CREATE DATABASE neonpro")
    settings = make_settings(url, pitr_dir=base / "pitr", backup_dir=base / "backups")
    pitr.setup(settings, pgdata, port, socket_dir=base, bin_dir=bin_dir)
    migrate.upgrade(url, Roles())
    box = Container(settings, database_url=url, keyring=make_keyring())
    try:
        report = backup.drill(box, wal_wait_s=240)
    finally:
        box.close()
    assert report.ok, report.problems
    assert report.rpo_seconds is not None, report.rpo_basis
    assert 0 < report.rpo_seconds <= backup.RPO_TARGET_S
    assert 0 < report.rto_seconds <= backup.RTO_TARGET_S


def test_restore_refuses_a_time_without_zone(tmp_path: Path) -> None:
    settings = Settings(environment=Environment.TEST, pitr_dir=tmp_path,
                        _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(pitr.PitrError, match="not set up"):
        pitr.restore(settings, datetime.now(UTC))
    with pytest.raises(pitr.PitrError, match="time zone"):
        pitr.restore(settings, datetime.now())  # noqa: DTZ005
