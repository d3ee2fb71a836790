"""Point-in-time recovery on a private cluster this test starts itself (as the account that
owns it: ``postgres`` when run as root): write rows, note the time, write more, destroy
the data, restore to the noted time, and find exactly the rows written before it."""

from __future__ import annotations

import os
import pwd
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from neonpro.adapters.backup.pitr_cluster import PgBackRestHost
from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.config import Environment, Settings
from neonpro.services import backup, pitr
from tests.conftest import make_keyring, make_settings
from tests.reliability.harness import PrivateCluster, cluster_requirements, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[tuple[Path, int, Path, Path]]:
    """The reliability harness's private cluster (initdb, free port, socket in its dir)."""
    found = cluster_requirements()
    if shutil.which("pgbackrest") is None:
        found = "pgbackrest is not installed (apt-get install pgbackrest; .ci/run does)"
    if isinstance(found, str):
        if os.environ.get("NEONPRO_REQUIRE_PITR"):
            pytest.fail(found)  # .ci/run installs pgbackrest: there this test must run
        pytest.skip(found)
    private = PrivateCluster(*found)
    private.start()
    try:
        yield private.pgdata, private.port, private.base, private.bin_dir
    finally:
        private.destroy()  # pitr.restore restarts it behind the harness's back: stop anyway


def _host(settings: Settings) -> PgBackRestHost:
    return PgBackRestHost(settings.pitr_dir)


def _conn(base: Path, port: int) -> psycopg.Connection[tuple[object, ...]]:
    user = pwd.getpwuid(Path(base).stat().st_uid).pw_name
    return psycopg.connect(f"host={base} port={port} user={user} dbname=postgres",
                           autocommit=True)


def test_restore_to_a_point_in_time(cluster: tuple[Path, int, Path, Path]) -> None:
    pgdata, port, base, bin_dir = cluster
    settings = Settings(environment=Environment.TEST, pitr_dir=base / "pitr",
                        _env_file=None)  # type: ignore[call-arg]
    pitr.setup(_host(settings), pgdata, port, socket_dir=base, bin_dir=bin_dir)
    with _conn(base, port) as conn:
        conn.execute("CREATE TABLE visits (n int PRIMARY KEY)")
        conn.execute("INSERT INTO visits SELECT generate_series(1, 100)")
    label = pitr.base_backup(_host(settings))["label"]
    assert label in {b["label"] for b in pitr.info(_host(settings))["backups"]}

    with _conn(base, port) as conn:
        conn.execute("INSERT INTO visits SELECT generate_series(101, 200)")
    time.sleep(1.0)
    noted = datetime.now(UTC)
    time.sleep(1.0)
    with _conn(base, port) as conn:
        conn.execute("INSERT INTO visits SELECT generate_series(201, 300)")
        conn.execute("DROP TABLE visits")  # the disaster

    done = pitr.restore(_host(settings), noted)
    assert done["seconds"] > 0
    with _conn(base, port) as conn:
        row = conn.execute("SELECT count(*), min(n), max(n) FROM visits").fetchone()
        in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    assert row == (200, 1, 200)  # everything before the noted time, nothing after
    assert in_recovery == (False,)  # promoted: writable again
    with _conn(base, port) as conn:
        conn.execute("INSERT INTO visits VALUES (201)")


def test_restore_starts_the_cluster_on_the_port_of_cluster_json(tmp_path: Path) -> None:
    """A cluster whose port is not in its postgresql.conf (started with ``pg_ctl -o -p``)
    comes back on that port after a restore. Before: ``pg_ctl start`` without the port,
    the server tried another one and the restore failed ("pg_ctl start failed", or no
    answer on the stored port)."""
    found = cluster_requirements()
    if shutil.which("pgbackrest") is None:
        found = "pgbackrest is not installed (apt-get install pgbackrest; .ci/run does)"
    if isinstance(found, str):
        if os.environ.get("NEONPRO_REQUIRE_PITR"):
            pytest.fail(found)
        pytest.skip(found)
    private = PrivateCluster(*found)
    port, decoy = private.port, free_port()
    conf = private.pgdata / "postgresql.conf"
    # the configured port is not the one it runs on: only the command line says that
    conf.write_text(conf.read_text().replace(f"port = {port}\n", f"port = {decoy}\n"))
    private._as_owner(str(private.bin_dir / "pg_ctl"), "-D", str(private.pgdata), "-w",
                      "-t", "60", "-l", str(private.base / "server.log"), "-o", f"-p {port}",
                      "start")
    try:
        settings = Settings(environment=Environment.TEST, pitr_dir=private.base / "pitr",
                            _env_file=None)  # type: ignore[call-arg]
        pitr.setup(_host(settings), private.pgdata, port, socket_dir=private.base,
                   bin_dir=private.bin_dir)
        with _conn(private.base, port) as conn:
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (1)")
        pitr.base_backup(_host(settings))
        time.sleep(1.0)
        noted = datetime.now(UTC)
        time.sleep(1.0)
        with _conn(private.base, port) as conn:
            conn.execute("DROP TABLE kept")
        pitr.restore(_host(settings), noted)
        with _conn(private.base, port) as conn:
            assert conn.execute("SELECT count(*) FROM kept").fetchone() == (1,)
            assert conn.execute("SHOW port").fetchone() == (str(port),)
    finally:
        private.destroy()


def test_server_options_keep_what_the_server_ran_with_and_force_the_port() -> None:
    cluster = pitr.Cluster("/data", 6543, "/run", "/bin", "postgres", "neonpro", "/pitr")
    opts = '/usr/lib/postgresql/15/bin/postgres "-D" "/data" "-p" "5999" "-c" "work_mem=8MB"\n'
    assert pitr.server_options(cluster, opts) == "-c work_mem=8MB -p 6543"
    assert pitr.server_options(cluster, None) == "-p 6543"


def test_drill_with_wal_archiving_measures_rto_and_rpo(
        cluster: tuple[Path, int, Path, Path]) -> None:
    pgdata, port, base, bin_dir = cluster
    user = pwd.getpwuid(base.stat().st_uid).pw_name
    url = f"postgresql://{user}@127.0.0.1:{port}/neonpro"
    with _conn(base, port) as conn:
        conn.execute("CREATE DATABASE neonpro")
    settings = make_settings(url, pitr_dir=base / "pitr", backup_dir=base / "backups")
    pitr.setup(_host(settings), pgdata, port, socket_dir=base, bin_dir=bin_dir)
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
        pitr.restore(_host(settings), datetime.now(UTC))
    with pytest.raises(pitr.PitrError, match="time zone"):
        pitr.restore(_host(settings), datetime.now())  # noqa: DTZ005
