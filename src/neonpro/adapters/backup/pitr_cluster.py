"""The :class:`~neonpro.domain.ports_backup.PitrHost` of this machine: pgBackRest, ``pg_ctl``
and the cluster's SQL, as the operating-system account that owns the data directory
(PostgreSQL refuses root; run as root, they go through ``runuser``), and the files of
``<NEONPRO_PITR_DIR>``: ``cluster.json`` (what ``setup`` learned), ``pgbackrest.conf``,
the repository (``repo/``), the logs, and the erasures a rewind must re-apply.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psycopg

from neonpro.adapters.backup.pgtools import last_line
from neonpro.adapters.backup.stream import write_atomically
from neonpro.domain.pitr import Cluster, DataDirectory, PitrError


def _as_owner(cluster_user: str, args: list[str]) -> list[str]:
    me = pwd.getpwuid(os.geteuid()).pw_name
    if me == cluster_user:
        return args
    if os.geteuid() == 0:
        return ["runuser", "-u", cluster_user, "--", *args]
    raise PitrError(f"the cluster belongs to {cluster_user!r}: run this as that user or root")


def _run(cluster: Cluster, args: list[str], what: str, *, timeout: float = 3600,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(_as_owner(cluster.os_user, args), capture_output=True, text=True,  # noqa: S603
                          check=False, timeout=timeout, cwd="/")
    if check and done.returncode != 0:
        raise PitrError(f"{what} failed: {last_line(done.stderr or done.stdout)}")
    return done


def _config_text(cluster: Cluster) -> str:
    base = Path(cluster.pitr_dir)
    return ("[global]\n"
            f"repo1-path={base / 'repo'}\n"
            "repo1-retention-full=2\n"
            f"log-path={base / 'log'}\n"
            f"lock-path={base / 'lock'}\n"
            "log-level-console=warn\n"
            "log-level-file=info\n"
            "start-fast=y\n"
            "compress-type=lz4\n"
            "process-max=2\n"
            "\n"
            f"[{cluster.stanza}]\n"
            f"pg1-path={cluster.pgdata}\n"
            f"pg1-port={cluster.port}\n"
            f"pg1-socket-path={cluster.socket_dir}\n"
            f"pg1-user={cluster.os_user}\n")


class PgBackRestHost:
    """pgBackRest and the cluster under ``pitr_dir`` (the setting ``NEONPRO_PITR_DIR``)."""

    def __init__(self, pitr_dir: Path) -> None:
        self._dir = pitr_dir

    @property
    def home(self) -> Path:
        return self._dir.resolve()

    @property
    def state_file(self) -> Path:
        return self._dir / "cluster.json"

    def load(self) -> Cluster | None:
        file = self.state_file
        return Cluster(**json.loads(file.read_text())) if file.is_file() else None

    def save(self, cluster: Cluster) -> None:
        """Whole or not at all: a full disk leaves the old file and no temporary one."""
        write_atomically(self.state_file, json.dumps(asdict(cluster), indent=2).encode(),
                         0o600)

    def data_directory(self, pgdata: Path) -> DataDirectory | None:
        path = pgdata.resolve()
        if not (path / "PG_VERSION").is_file():
            return None
        return DataDirectory(path, pwd.getpwuid(path.stat().st_uid).pw_name,
                             (path / "PG_VERSION").read_text().strip())

    def bin_dir(self, version: str) -> Path | None:
        candidate = Path(f"/usr/lib/postgresql/{version}/bin")
        return candidate if (candidate / "pg_ctl").exists() else None

    def prepare(self, cluster: Cluster) -> None:
        """The repository, log and lock directories and ``pgbackrest.conf``, owned by the
        cluster's account."""
        base, root = Path(cluster.pitr_dir), os.geteuid() == 0
        for sub in ("", "repo", "log", "lock"):
            path = base / sub
            path.mkdir(parents=True, exist_ok=True, mode=0o750)
            if root:
                shutil.chown(path, cluster.os_user, cluster.os_user)
        write_atomically(cluster.config, _config_text(cluster).encode(), 0o640)
        if root:
            shutil.chown(cluster.config, cluster.os_user, cluster.os_user)

    def archive_command(self, cluster: Cluster) -> str:
        return (f"{shutil.which('pgbackrest') or 'pgbackrest'} --config={cluster.config} "
                f"--stanza={cluster.stanza} archive-push %p")

    def execute(self, cluster: Cluster, statements: list[str]) -> None:
        # not the unit of work: ALTER SYSTEM on a cluster neonpro may not even use, through
        # its Unix socket as the account that owns it, outside any transaction
        with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())

    def in_recovery(self, cluster: Cluster) -> bool | None:
        """Whether the server still replays WAL; None while it does not answer."""
        # not the unit of work: a server just restarted, asked before anything else runs
        try:
            with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.OperationalError:
            return None
        return None if row is None else bool(row[0])

    def pgbackrest(self, cluster: Cluster, *args: str, what: str | None = None,
                   timeout: float = 3600) -> str:
        binary = shutil.which("pgbackrest")
        if binary is None:
            raise PitrError("pgbackrest is not installed (Debian: apt-get install pgbackrest)")
        return _run(cluster, [binary, f"--config={cluster.config}",
                              f"--stanza={cluster.stanza}", *args],
                    what or f"pgbackrest {args[0]}", timeout=timeout).stdout

    def running(self, cluster: Cluster) -> bool:
        done = _run(cluster, [str(Path(cluster.bin_dir) / "pg_ctl"), "-D", cluster.pgdata,
                              "status"], "pg_ctl status", check=False, timeout=30)
        return done.returncode == 0

    def pg_ctl(self, cluster: Cluster, action: str, options: str | None = None) -> None:
        args = [str(Path(cluster.bin_dir) / "pg_ctl"), "-D", cluster.pgdata, "-w", "-t", "300"]
        if action == "stop":
            args += ["-m", "fast", "stop"]
        else:
            args += ["-l", str(cluster.server_log), "-o", options or "", action]
        _run(cluster, args, f"pg_ctl {action}", timeout=330)

    def postmaster_opts(self, cluster: Cluster) -> str | None:
        try:
            return (Path(cluster.pgdata) / "postmaster.opts").read_text()
        except OSError:
            return None

    # the erasures a rewind must re-apply: read before it, applied after
    @property
    def pending_file(self) -> Path:
        return self._dir / "pending-erasures.json"

    def save_pending(self, data: dict[str, Any]) -> None:
        write_atomically(self.pending_file, json.dumps(data).encode())

    def load_pending(self) -> Any:
        file = self.pending_file
        return json.loads(file.read_text()) if file.is_file() else None

    def forget_pending(self) -> None:
        self.pending_file.unlink(missing_ok=True)
