"""Point-in-time recovery's decisions over a fake ``PitrHost``: what runs in which order,
what is refused before anything runs, the options a restored server starts with, and the
erasures a rewind keeps. The real cluster is ``tests/integration/test_pitr.py`` (slow)."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from neonpro.domain.pitr import Cluster, DataDirectory, PitrError
from neonpro.domain.ports_backup import PitrHost
from neonpro.services import pitr

CLUSTER = Cluster("/data", 6543, "/run", "/bin", "postgres", "neonpro", "/pitr")
INFO = [{"name": "neonpro", "status": {"message": "ok"}, "archive": [{"min": "1", "max": "9"}],
         "backup": [{"label": "L1", "type": "full", "timestamp": {"start": 0, "stop": 1},
                     "info": {"size": 10}}]}]


@dataclass
class FakeHost:
    cluster: Cluster | None = CLUSTER
    up: bool = True
    opts: str | None = '/usr/bin/postgres "-D" "/data" "-p" "5999" "-c" "work_mem=8MB"\n'
    recovering: list[bool | None] = field(default_factory=lambda: [None, True, False])
    failing: set[str] = field(default_factory=set)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    pending: Any = None

    @property
    def home(self) -> Path:
        return Path("/pitr")

    @property
    def state_file(self) -> Path:
        return Path("/pitr/cluster.json")

    def load(self) -> Cluster | None:
        return self.cluster

    def save(self, cluster: Cluster) -> None:
        self.calls.append(("save",))
        self.cluster = cluster

    def data_directory(self, pgdata: Path) -> DataDirectory | None:
        return DataDirectory(pgdata, "postgres", "17") if pgdata.name == "data" else None

    def bin_dir(self, version: str) -> Path | None:
        return None

    def prepare(self, cluster: Cluster) -> None:
        self.calls.append(("prepare",))

    def archive_command(self, cluster: Cluster) -> str:
        return "pgbackrest archive-push %p"

    def execute(self, cluster: Cluster, statements: list[str]) -> None:
        self.calls.append(("sql", *statements))

    def in_recovery(self, cluster: Cluster) -> bool | None:
        return self.recovering.pop(0) if len(self.recovering) > 1 else self.recovering[0]

    def pgbackrest(self, cluster: Cluster, *args: str, what: str | None = None,
                   timeout: float = 3600) -> str:
        self.calls.append(("pgbackrest", *args))
        if args[0] in self.failing:
            raise PitrError(f"pgbackrest {args[0]} failed: nope")
        return json.dumps(INFO) if args[0] == "info" else ""

    def running(self, cluster: Cluster) -> bool:
        return self.up

    def pg_ctl(self, cluster: Cluster, action: str, options: str | None = None) -> None:
        self.calls.append(("pg_ctl", action, options))

    def postmaster_opts(self, cluster: Cluster) -> str | None:
        return self.opts

    @property
    def pending_file(self) -> Path:
        return Path("/pitr/pending-erasures.json")

    def save_pending(self, data: dict[str, Any]) -> None:
        self.pending = json.loads(json.dumps(data))

    def load_pending(self) -> Any:
        return self.pending

    def forget_pending(self) -> None:
        self.pending = None


def _names(host: FakeHost) -> list[str]:
    return [" ".join(str(c) for c in call[:2]) for call in host.calls]


def test_a_restore_archives_stops_rewinds_and_starts_with_the_old_options() -> None:
    host = FakeHost()
    done = pitr.restore(host, datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert _names(host) == ["pgbackrest check", "pg_ctl stop", "pgbackrest restore",
                            "pg_ctl start"]
    restore = next(c for c in host.calls if c[:2] == ("pgbackrest", "restore"))
    assert "--target=2031-01-02 03:04:05+00:00" in restore
    assert "--target-action=promote" in restore
    # what the server ran with, less its data directory and old port: the cluster's port
    assert host.calls[-1] == ("pg_ctl", "start", "-c work_mem=8MB -p 6543")
    assert done["target"] == "2031-01-02T03:04:05+00:00"
    assert host.recovering == [False]  # it waited until the server was promoted


def test_a_restore_goes_on_when_the_last_archive_fails_or_the_server_is_down() -> None:
    host = FakeHost(failing={"check"})
    pitr.restore(host, datetime.now(UTC))
    assert "pg_ctl stop" in _names(host)
    down = FakeHost(up=False, opts=None)
    pitr.restore(down, datetime.now(UTC))
    assert _names(down) == ["pgbackrest restore", "pg_ctl start"]
    assert down.calls[-1] == ("pg_ctl", "start", "-p 6543")


def test_a_restore_refuses_before_touching_anything() -> None:
    host = FakeHost()
    with pytest.raises(PitrError, match="time zone"):
        pitr.restore(host, datetime(2031, 1, 1))  # noqa: DTZ001
    host.cluster = None
    with pytest.raises(PitrError, match="not set up"):
        pitr.restore(host, datetime.now(UTC))
    assert host.calls == []


def test_a_server_that_never_finishes_recovery_is_an_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pitr, "RECOVERY_WAIT_S", 0)
    monkeypatch.setattr(pitr.time, "sleep", lambda _s: None)
    with pytest.raises(PitrError, match="did not finish recovery"):
        pitr.restore(FakeHost(recovering=[True]), datetime.now(UTC))


def test_setup_turns_archiving_on_and_saves_the_cluster_last() -> None:
    host = FakeHost(cluster=None)
    cluster = pitr.setup(host, Path("/srv/data"), 6543, bin_dir=Path("/opt/pg/bin"))
    assert _names(host) == ["prepare", "sql ALTER SYSTEM SET wal_level = 'replica'",
                            "pg_ctl restart", "pgbackrest stanza-create", "pgbackrest check",
                            "save"]
    statements = host.calls[1]
    assert "ALTER SYSTEM SET archive_command = 'pgbackrest archive-push %p'" in statements
    assert f"ALTER SYSTEM SET archive_timeout = '{pitr.ARCHIVE_TIMEOUT_S}s'" in statements
    assert host.cluster == cluster
    assert (cluster.os_user, cluster.bin_dir, cluster.socket_dir) == (
        "postgres", "/opt/pg/bin", "/var/run/postgresql")


def test_setup_refuses_what_is_no_cluster_or_has_no_pg_ctl() -> None:
    host = FakeHost(cluster=None)
    with pytest.raises(PitrError, match="not a PostgreSQL data directory"):
        pitr.setup(host, Path("/srv/elsewhere"), 6543)
    with pytest.raises(PitrError, match="pass --bin-dir"):
        pitr.setup(host, Path("/srv/data"), 6543)
    assert host.calls == []


def test_base_backups_are_full_diff_or_incr() -> None:
    host = FakeHost()
    with pytest.raises(PitrError, match="full, diff or incr"):
        pitr.base_backup(host, "everything")
    assert host.calls == []
    done = pitr.base_backup(host, "diff")
    assert ("pgbackrest", "backup", "--type=diff") in host.calls
    assert (done["label"], done["bytes"]) == ("L1", 10)
    assert pitr.info(host)["wal"] == {"min": "1", "max": "9"}


def test_the_erasures_a_rewind_keeps_say_whether_they_are_complete() -> None:
    host = FakeHost()
    assert pitr.load_pending_erasures(host) == ([], False)  # nothing saved: not proven
    pitr.save_pending_erasures(host, [{"id": "e1"}], proven=True)
    assert pitr.load_pending_erasures(host) == ([{"id": "e1"}], True)
    host.pending = [{"id": "e0"}]  # an older version's file did not say
    assert pitr.load_pending_erasures(host) == ([{"id": "e0"}], False)
    pitr.forget_pending_erasures(host)
    assert host.pending is None


def test_the_fake_host_offers_every_method_of_the_port() -> None:
    for name, member in vars(PitrHost).items():
        if name.startswith("_"):
            continue
        assert hasattr(FakeHost, name), name
        if callable(member):
            want = [p.name for p in inspect.signature(member).parameters.values()]
            got = [p.name for p in inspect.signature(getattr(FakeHost, name)).parameters.values()]
            assert got == want, name
