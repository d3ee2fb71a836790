"""Point-in-time recovery with pgBackRest: neonpro writes its configuration, switches WAL
archiving on, takes base backups and restores a cluster to a moment (docs/operations.md).

The decisions live here (what runs in which order, and the checks); pgBackRest, ``pg_ctl``,
the cluster's SQL and the files of ``<NEONPRO_PITR_DIR>`` (``cluster.json``, what ``setup``
learned; ``pgbackrest.conf``; the repository; the logs) are the port
:class:`~neonpro.domain.ports_backup.PitrHost`'s (``adapters/backup/pitr_cluster.py``).

The cluster is one whose ``postgresql.conf`` lives in its data directory (the ``initdb``
layout, started with ``pg_ctl``). A restore also re-applies the erasures recorded after the
target time (read from the live database before it is stopped, and from logical backups),
so recovering to an earlier moment never brings an erased patient back.
"""

from __future__ import annotations

import json
import shlex
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from neonpro.domain.pitr import Cluster, PitrError
from neonpro.domain.ports_backup import PitrHost

log = structlog.get_logger(__name__)

ARCHIVE_TIMEOUT_S = 60  # bounds the data-loss window of a quiet server (RPO)
RECOVERY_WAIT_S = 300  # a restored cluster must finish its recovery within this

__all__ = ["ARCHIVE_TIMEOUT_S", "Cluster", "PitrError", "base_backup", "forget_pending_erasures",
           "info", "load", "load_pending_erasures", "restore", "running",
           "save_pending_erasures", "server_options", "setup"]


def load(host: PitrHost) -> Cluster:
    cluster = host.load()
    if cluster is None:
        raise PitrError(f"point-in-time recovery is not set up ({host.state_file} missing): "
                        "run `neonpro pitr setup` first")
    return cluster


def running(host: PitrHost, cluster: Cluster) -> bool:
    return host.running(cluster)


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


def _cluster(host: PitrHost, pgdata: Path, port: int, socket_dir: Path | None,
             bin_dir: Path | None, stanza: str) -> Cluster:
    """The cluster of ``pgdata``, as ``setup`` will save it."""
    found = host.data_directory(pgdata)
    if found is None:
        raise PitrError(f"{pgdata.resolve()} is not a PostgreSQL data directory")
    binaries = bin_dir or host.bin_dir(found.version)
    if binaries is None:
        raise PitrError(f"no pg_ctl for PostgreSQL {found.version}: pass --bin-dir")
    return Cluster(str(found.path), port, str(socket_dir or "/var/run/postgresql"),
                   str(binaries), found.owner, stanza, str(host.home))


def setup(host: PitrHost, pgdata: Path, port: int, *, socket_dir: Path | None = None,
          bin_dir: Path | None = None, stanza: str = "neonpro", restart: bool = True) -> Cluster:
    """Configure pgBackRest for the cluster in ``pgdata``, switch WAL archiving on (a
    restart), create the stanza and check that a WAL segment reaches the repository."""
    cluster = _cluster(host, pgdata, port, socket_dir, bin_dir, stanza)
    host.prepare(cluster)
    host.execute(cluster, [
        "ALTER SYSTEM SET wal_level = 'replica'",
        "ALTER SYSTEM SET archive_mode = 'on'",
        f"ALTER SYSTEM SET archive_command = '{host.archive_command(cluster)}'",
        f"ALTER SYSTEM SET archive_timeout = '{ARCHIVE_TIMEOUT_S}s'",
        "ALTER SYSTEM SET max_wal_senders = 3",
    ])
    if restart:
        host.pg_ctl(cluster, "restart", server_options(cluster, host.postmaster_opts(cluster)))
    host.pgbackrest(cluster, "stanza-create")
    host.pgbackrest(cluster, "check")
    host.save(cluster)
    log.info("pitr_setup", stanza=stanza, port=port)
    return cluster


def base_backup(host: PitrHost, kind: str = "full") -> dict[str, Any]:
    """A pgBackRest base backup (full, diff or incr); returns its label and times."""
    if kind not in {"full", "diff", "incr"}:
        raise PitrError("backup type must be full, diff or incr")
    cluster = load(host)
    started = time.perf_counter()
    host.pgbackrest(cluster, "backup", f"--type={kind}")
    newest: dict[str, Any] = info(host)["backups"][-1]
    return newest | {"seconds": round(time.perf_counter() - started, 3)}


def info(host: PitrHost) -> dict[str, Any]:
    cluster = load(host)
    data = json.loads(host.pgbackrest(cluster, "info", "--output=json"))
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


def restore(host: PitrHost, to: datetime) -> dict[str, Any]:
    """Stop the cluster, restore it to ``to`` (base backup + archived WAL), promote and start.

    If the cluster is still up, its current WAL is switched and archived first, so every
    change up to the target time reaches the repository.
    """
    if to.tzinfo is None:
        raise PitrError("the target time needs a time zone (for example 2026-11-27T10:15:00Z)")
    cluster = load(host)
    started = time.perf_counter()
    # how the server ran, read before the restore deletes it (and the port, always)
    options = server_options(cluster, host.postmaster_opts(cluster))
    if host.running(cluster):
        try:
            host.pgbackrest(cluster, "check", timeout=120)  # switches WAL, waits for its archive
        except PitrError as exc:
            log.warning("pitr_pre_restore_archive_failed", error=str(exc))
        host.pg_ctl(cluster, "stop")
    target = to.isoformat(sep=" ")
    host.pgbackrest(cluster, "restore", "--delta", "--type=time", f"--target={target}",
                    "--target-action=promote", what="pgbackrest restore")
    host.pg_ctl(cluster, "start", options)
    _wait_for_promotion(host, cluster)
    return {"target": to.isoformat(), "seconds": round(time.perf_counter() - started, 3)}


def _wait_for_promotion(host: PitrHost, cluster: Cluster) -> None:
    deadline = time.monotonic() + RECOVERY_WAIT_S
    while host.in_recovery(cluster) is not False:
        if time.monotonic() > deadline:
            raise PitrError(f"the restored cluster did not finish recovery within "
                            f"{RECOVERY_WAIT_S} s")
        time.sleep(0.5)


# ------------------------------------------------------------ erasures a rewind must keep
def save_pending_erasures(host: PitrHost, erasures: list[dict[str, Any]], *,
                          proven: bool) -> None:
    """Keep the erasures a rewind must not lose (read before it, applied after),
    atomically; ``proven``: the live ledger answered, so the list is complete (OSError
    when it cannot be written)."""
    host.save_pending({"proven": proven, "erasures": erasures})


def load_pending_erasures(host: PitrHost) -> tuple[list[dict[str, Any]], bool]:
    """The erasures saved before a rewind and whether they were complete; none (and not
    proven) when nothing was saved."""
    data = host.load_pending()
    if data is None:
        return [], False  # what the rewind discarded is known nowhere any more
    if isinstance(data, list):  # saved by an older version, which did not say
        return data, False
    return list(data["erasures"]), bool(data["proven"])


def forget_pending_erasures(host: PitrHost) -> None:
    """Once re-applied, the saved erasures go."""
    host.forget_pending()
