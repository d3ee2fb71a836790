"""Point-in-time recovery with pgBackRest: neonpro writes its configuration, switches WAL
archiving on, takes base backups and restores a cluster to a moment (docs/operations.md).

pgBackRest, ``pg_ctl`` and the archiver run as the operating-system account that owns the
data directory (PostgreSQL refuses root); run as root, neonpro runs them through
``runuser``. What ``setup`` learned is kept in ``<NEONPRO_PITR_DIR>/cluster.json``, beside
``pgbackrest.conf``, the repository (``repo/``), and the logs.

The cluster is one whose ``postgresql.conf`` lives in its data directory (the ``initdb``
layout, started with ``pg_ctl``). A restore also re-applies the erasures recorded after the
target time (read from the live database before it is stopped, and from logical backups),
so recovering to an earlier moment never brings an erased patient back.
"""

from __future__ import annotations

import json
import os
import pwd
import shlex
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import structlog

from neonpro.adapters.backup.pgtools import last_line
from neonpro.adapters.backup.stream import write_atomically
from neonpro.config import Settings
from neonpro.domain.errors import OperationFailed

log = structlog.get_logger(__name__)

ARCHIVE_TIMEOUT_S = 60  # bounds the data-loss window of a quiet server (RPO)


class PitrError(OperationFailed):
    """A point-in-time recovery step failed; the message is safe to show."""


@dataclass(frozen=True)
class Cluster:
    pgdata: str
    port: int
    socket_dir: str
    bin_dir: str
    os_user: str
    stanza: str
    pitr_dir: str

    @property
    def config(self) -> Path:
        return Path(self.pitr_dir) / "pgbackrest.conf"

    @property
    def server_log(self) -> Path:
        return Path(self.pitr_dir) / "log" / "postgresql.log"

    def conninfo(self, database: str = "postgres") -> str:
        return (f"host={self.socket_dir} port={self.port} user={self.os_user} "
                f"dbname={database} connect_timeout=10")


def _state_file(settings: Settings) -> Path:
    return settings.pitr_dir / "cluster.json"


def load(settings: Settings) -> Cluster:
    file = _state_file(settings)
    if not file.is_file():
        raise PitrError(f"point-in-time recovery is not set up ({file} missing): run "
                        "`neonpro pitr setup` first")
    return Cluster(**json.loads(file.read_text()))


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


def _pgbackrest(cluster: Cluster, *args: str, what: str | None = None,
                timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("pgbackrest")
    if binary is None:
        raise PitrError("pgbackrest is not installed (Debian: apt-get install pgbackrest)")
    return _run(cluster, [binary, f"--config={cluster.config}", f"--stanza={cluster.stanza}",
                          *args], what or f"pgbackrest {args[0]}", timeout=timeout)


def _bin_dir(pgdata: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    version = (pgdata / "PG_VERSION").read_text().strip()
    candidate = Path(f"/usr/lib/postgresql/{version}/bin")
    if not (candidate / "pg_ctl").exists():
        raise PitrError(f"no pg_ctl for PostgreSQL {version}: pass --bin-dir")
    return candidate


def _write_config(cluster: Cluster) -> None:
    base = Path(cluster.pitr_dir)
    _write(cluster.config, (
        "[global]\n"
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
        f"pg1-user={cluster.os_user}\n"), 0o640)


def _write(path: Path, text: str, mode: int) -> None:
    """Whole or not at all: a full disk leaves the old file and no temporary one."""
    write_atomically(path, text.encode(), mode)


def _sql(cluster: Cluster, statements: list[str]) -> None:
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def running(cluster: Cluster) -> bool:
    done = _run(cluster, [str(Path(cluster.bin_dir) / "pg_ctl"), "-D", cluster.pgdata,
                          "status"], "pg_ctl status", check=False, timeout=30)
    return done.returncode == 0


def server_options(cluster: Cluster, postmaster_opts: str | None) -> str:
    """The options to start the cluster's server with: those it last ran with (its
    ``postmaster.opts``: what ``pg_ctl restart`` reuses, and what a delta restore deletes)
    less the binary and data directory, and always the port of ``cluster.json`` (a
    cluster started with ``-p`` has no port in its ``postgresql.conf``: without it, the
    restored server would try 5432)."""
    words = shlex.split(postmaster_opts or "")[1:]  # [0] is the postgres binary
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in {"-D", "-p"}:
            skip = True
        elif not word.startswith(("-D", "-p", "--port=")):
            kept.append(word)
    return shlex.join([*kept, "-p", str(cluster.port)])


def _postmaster_opts(cluster: Cluster) -> str | None:
    try:
        return (Path(cluster.pgdata) / "postmaster.opts").read_text()
    except OSError:
        return None


def _pg_ctl(cluster: Cluster, action: str, options: str | None = None) -> None:
    args = [str(Path(cluster.bin_dir) / "pg_ctl"), "-D", cluster.pgdata, "-w", "-t", "300"]
    if action == "stop":
        args += ["-m", "fast", "stop"]
    else:
        opts = options if options is not None else server_options(
            cluster, _postmaster_opts(cluster))
        args += ["-l", str(cluster.server_log), "-o", opts, action]
    _run(cluster, args, f"pg_ctl {action}", timeout=330)


def setup(settings: Settings, pgdata: Path, port: int, *, socket_dir: Path | None = None,
          bin_dir: Path | None = None, stanza: str = "neonpro", restart: bool = True) -> Cluster:
    """Configure pgBackRest for the cluster in ``pgdata``, switch WAL archiving on (a
    restart), create the stanza and check that a WAL segment reaches the repository."""
    pgdata = pgdata.resolve()
    if not (pgdata / "PG_VERSION").is_file():
        raise PitrError(f"{pgdata} is not a PostgreSQL data directory")
    owner = pwd.getpwuid(pgdata.stat().st_uid).pw_name
    base = settings.pitr_dir.resolve()
    cluster = Cluster(str(pgdata), port, str(socket_dir or "/var/run/postgresql"),
                      str(_bin_dir(pgdata, bin_dir)), owner, stanza, str(base))
    for sub in ("", "repo", "log", "lock"):
        path = base / sub
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
        if os.geteuid() == 0:
            shutil.chown(path, owner, owner)
    _write_config(cluster)
    if os.geteuid() == 0:
        shutil.chown(cluster.config, owner, owner)
    archive = (f"{shutil.which('pgbackrest') or 'pgbackrest'} --config={cluster.config} "
               f"--stanza={stanza} archive-push %p")
    _sql(cluster, [
        "ALTER SYSTEM SET wal_level = 'replica'",
        "ALTER SYSTEM SET archive_mode = 'on'",
        f"ALTER SYSTEM SET archive_command = '{archive}'",
        f"ALTER SYSTEM SET archive_timeout = '{ARCHIVE_TIMEOUT_S}s'",
        "ALTER SYSTEM SET max_wal_senders = 3",
    ])
    if restart:
        _pg_ctl(cluster, "restart")
    _pgbackrest(cluster, "stanza-create")
    _pgbackrest(cluster, "check")
    _write(_state_file(settings), json.dumps(asdict(cluster), indent=2), 0o600)
    log.info("pitr_setup", stanza=stanza, port=port)
    return cluster


def base_backup(settings: Settings, kind: str = "full") -> dict[str, Any]:
    """A pgBackRest base backup (full, diff or incr); returns its label and times."""
    if kind not in {"full", "diff", "incr"}:
        raise PitrError("backup type must be full, diff or incr")
    cluster = load(settings)
    started = time.perf_counter()
    _pgbackrest(cluster, "backup", f"--type={kind}")
    newest: dict[str, Any] = info(settings)["backups"][-1]
    return newest | {"seconds": round(time.perf_counter() - started, 3)}


def info(settings: Settings) -> dict[str, Any]:
    cluster = load(settings)
    done = _pgbackrest(cluster, "info", "--output=json")
    data = json.loads(done.stdout)
    stanza = next((s for s in data if s.get("name") == cluster.stanza), None)
    if stanza is None:
        raise PitrError(f"stanza {cluster.stanza} not found in the repository")
    backups = [{"label": b["label"], "type": b["type"],
                "start": datetime.fromtimestamp(b["timestamp"]["start"]).astimezone().isoformat(),
                "stop": datetime.fromtimestamp(b["timestamp"]["stop"]).astimezone().isoformat(),
                "bytes": b["info"]["size"]} for b in stanza.get("backup", [])]
    archive = stanza.get("archive", [])
    return {"stanza": cluster.stanza, "status": stanza["status"]["message"], "backups": backups,
            "wal": {"min": archive[0].get("min") if archive else None,
                    "max": archive[0].get("max") if archive else None}}


def restore(settings: Settings, to: datetime) -> dict[str, Any]:
    """Stop the cluster, restore it to ``to`` (base backup + archived WAL), promote and start.

    If the cluster is still up, its current WAL is switched and archived first, so every
    change up to the target time reaches the repository.
    """
    if to.tzinfo is None:
        raise PitrError("the target time needs a time zone (for example 2026-11-27T10:15:00Z)")
    cluster = load(settings)
    started = time.perf_counter()
    # how the server ran, read before the restore deletes it (and the port, always)
    options = server_options(cluster, _postmaster_opts(cluster))
    if running(cluster):
        try:
            _pgbackrest(cluster, "check", timeout=120)  # switches WAL and waits for its archive
        except PitrError as exc:
            log.warning("pitr_pre_restore_archive_failed", error=str(exc))
        _pg_ctl(cluster, "stop")
    target = to.isoformat(sep=" ")
    _pgbackrest(cluster, "restore", "--delta", "--type=time", f"--target={target}",
                "--target-action=promote", what="pgbackrest restore")
    _pg_ctl(cluster, "start", options)
    deadline = time.monotonic() + 300
    while True:
        try:
            with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row is not None and not row[0]:
                break
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            raise PitrError("the restored cluster did not finish recovery within 300 s")
        time.sleep(0.5)
    return {"target": to.isoformat(), "seconds": round(time.perf_counter() - started, 3)}


# ------------------------------------------------------------ erasures a rewind must keep
def pending_erasures_path(settings: Settings) -> Path:
    """Where the erasures to re-apply after a rewind wait (read before it, applied after)."""
    return settings.pitr_dir / "pending-erasures.json"


def save_pending_erasures(settings: Settings, erasures: list[dict[str, Any]], *,
                          proven: bool) -> None:
    """Keep the erasures a rewind must not lose, atomically; ``proven``: the live ledger
    answered, so the list is complete (OSError when it cannot be written)."""
    write_atomically(pending_erasures_path(settings),
                     json.dumps({"proven": proven, "erasures": erasures}).encode())


def load_pending_erasures(settings: Settings) -> tuple[list[dict[str, Any]], bool]:
    """The erasures saved before a rewind and whether they were complete; none (and not
    proven) when nothing was saved."""
    file = pending_erasures_path(settings)
    if not file.is_file():
        return [], False  # what the rewind discarded is known nowhere any more
    data = json.loads(file.read_text())
    if isinstance(data, list):  # saved by an older version, which did not say
        return data, False
    return list(data["erasures"]), bool(data["proven"])
