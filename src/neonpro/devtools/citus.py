"""A local Citus cluster for development and tests: a coordinator and its workers on private
ports of this machine, each an ordinary PostgreSQL cluster with Citus preloaded.

    python -m neonpro.devtools.citus up        # start (or reuse) it; prints the database URL
    python -m neonpro.devtools.citus url       # the coordinator's URL, if it is up
    python -m neonpro.devtools.citus down      # stop it and remove its files

It needs PostgreSQL's server binaries and the Citus extension for them (on the machines
neonpro is developed on: ``../shared/citus/install.sh``; elsewhere Citus's own packages).
PostgreSQL refuses to run as root: run as root, every ``initdb`` and ``pg_ctl`` goes through
``runuser`` to the ``postgres`` account. The nodes trust local connections and do not
``fsync``: a cluster to develop and test against, never to keep data in.

Every node gets the database and ``CREATE EXTENSION citus``; the coordinator registers
itself (``citus_set_coordinator_host``) and each worker (``citus_add_node``). Its state
(ports, account, binaries) is kept in ``cluster.json`` in its directory, so ``url`` and
``down`` find it again from another process.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from neonpro.adapters.db import citus_nodes

DEFAULT_BASE = Path("/tmp/neonpro-citus")  # noqa: S108  (a development cluster's home)
DEFAULT_PORT = 55432
DATABASE = "neonpro"
STATE = "cluster.json"


class CitusUnavailable(RuntimeError):
    """This machine cannot run a local Citus cluster (the message says why)."""


@dataclass
class LocalCluster:
    """Where a local cluster lives and how to reach it."""

    base: str
    user: str
    bin_dir: str
    coordinator: int
    workers: list[int] = field(default_factory=list)
    database: str = DATABASE

    @property
    def ports(self) -> list[int]:
        return [self.coordinator, *self.workers]

    def url(self, port: int | None = None, database: str | None = None,
            login: str | None = None) -> str:
        """A node's URL (the coordinator's by default), as ``login`` (the superuser's)."""
        return (f"postgresql://{login or self.user}@127.0.0.1:{port or self.coordinator}/"
                f"{database or self.database}")

    def pgdata(self, port: int) -> Path:
        return Path(self.base) / f"node-{port}"


def requirements() -> tuple[str, Path]:
    """(account, PostgreSQL bin dir) that can run Citus nodes here, or CitusUnavailable."""
    for lib in sorted(Path("/usr/lib/postgresql").glob("*/lib/citus.so"), reverse=True):
        bin_dir = lib.parent.parent / "bin"
        if (bin_dir / "initdb").exists():
            break
    else:
        msg = ("Citus is not installed for any PostgreSQL under /usr/lib/postgresql "
               "(on neonpro's development machines: sudo ../shared/citus/install.sh)")
        raise CitusUnavailable(msg)
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name, bin_dir
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        msg = "running as root, but there is no postgres account to run the nodes"
        raise CitusUnavailable(msg) from None
    return "postgres", bin_dir


def _as(user: str, *args: str, timeout: float = 120) -> None:
    cmd = list(args) if os.geteuid() != 0 else ["runuser", "-u", user, "--", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/",  # noqa: S603  (our own argument lists)
                          check=False)
    if done.returncode != 0:
        msg = f"{Path(args[0]).name} failed: {done.stderr.strip()[-500:]}"
        raise RuntimeError(msg)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def load(base: Path = DEFAULT_BASE) -> LocalCluster | None:
    try:
        return LocalCluster(**json.loads((base / STATE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def running(cluster: LocalCluster) -> bool:
    try:
        with psycopg.connect(cluster.url(), connect_timeout=3, autocommit=True) as conn:
            return len(conn.execute("SELECT * FROM citus_get_active_worker_nodes()")
                       .fetchall()) == len(cluster.workers)
    except psycopg.Error:
        return False


def up(base: Path = DEFAULT_BASE, port: int = DEFAULT_PORT, workers: int = 2,
       *, shard_count: int = 8) -> LocalCluster:
    """Start the cluster in ``base`` (creating it the first time) and return it."""
    cluster = load(base)
    if cluster is not None:
        for p in cluster.ports:
            if not (cluster.pgdata(p) / "postmaster.pid").exists():
                _start(cluster, p)
        if running(cluster):
            return cluster
        down(base)  # half made: start again from nothing
    user, bin_dir = requirements()
    ports = [port + i for i in range(workers + 1)]
    taken = [p for p in ports if not port_free(p)]
    if taken:
        msg = f"ports in use: {', '.join(map(str, taken))} (choose another --port)"
        raise RuntimeError(msg)
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base, user, user)
    cluster = LocalCluster(str(base), user, str(bin_dir), ports[0], ports[1:])
    (base / STATE).write_text(json.dumps(asdict(cluster)))
    for p in cluster.ports:
        _init(cluster, p, shard_count)
        _start(cluster, p)
    add_database(cluster, cluster.database)
    return cluster


def _nodes(cluster: LocalCluster) -> citus_nodes.Nodes:
    return citus_nodes.Nodes(("127.0.0.1", cluster.coordinator),
                             tuple(("127.0.0.1", p) for p in cluster.workers))


def add_database(cluster: LocalCluster, name: str) -> str:
    """A Citus database ``name`` on every node, its coordinator and workers registered
    (Citus keeps its metadata per database); returns the coordinator's URL of it."""
    return citus_nodes.create_database(cluster.url(database="postgres"), _nodes(cluster), name)


def drop_database(cluster: LocalCluster, name: str) -> None:
    """Drop ``name`` from every node (workers first)."""
    citus_nodes.drop_database(cluster.url(database="postgres"), _nodes(cluster), name)


def start_worker(cluster: LocalCluster) -> int:
    """A new worker node on the next free port, made like the others, with the cluster's
    database and its extension (an operator's new machine); not yet registered: the
    coordinator adds it (``citus_add_node``). Recorded in the cluster's state first, so
    ``down`` stops it too. Returns its port."""
    port = cluster.workers[-1] + 1
    while not port_free(port):
        port += 1
    _init(cluster, port, 8)
    cluster.workers.append(port)
    (Path(cluster.base) / STATE).write_text(json.dumps(asdict(cluster)))
    _start(cluster, port)
    node = ("127.0.0.1", port)
    citus_nodes.create_database(cluster.url(database="postgres"),
                                citus_nodes.Nodes(node, ()), cluster.database)
    return port


def _init(cluster: LocalCluster, port: int, shard_count: int) -> None:
    pgdata = cluster.pgdata(port)
    _as(cluster.user, str(Path(cluster.bin_dir) / "initdb"), "-D", str(pgdata), "-U",
        cluster.user, "--auth=trust", "--no-sync")
    with (pgdata / "postgresql.conf").open("a") as conf:
        conf.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{cluster.base}'\n"
            "shared_preload_libraries = 'citus'\nfsync = off\nsynchronous_commit = on\n"
            "max_connections = 200\nshared_buffers = 64MB\nmax_prepared_transactions = 100\n"
            # a shard moves online (citus_move_shard_placement, logical replication)
            "wal_level = logical\nmax_replication_slots = 16\nmax_wal_senders = 16\n"
            f"citus.shard_count = {shard_count}\n")
        if _knows(cluster, "output_plugin_libraries"):
            # servers with this setting (Debian's 15.20 has it) refuse Citus's own logical
            # decoding plugin, which a shard move uses, unless it is listed
            conf.write("output_plugin_libraries = 'pgoutput, test_decoding, citus'\n")


def _knows(cluster: LocalCluster, setting: str) -> bool:
    """Whether this PostgreSQL server has ``setting``."""
    described = subprocess.run(  # noqa: S603  (the server binary found by requirements())
        [str(Path(cluster.bin_dir) / "postgres"), "--describe-config"],
        capture_output=True, text=True, check=False, timeout=60).stdout
    return any(line.split("\t", 1)[0] == setting for line in described.splitlines())


def _start(cluster: LocalCluster, port: int) -> None:
    pgdata = cluster.pgdata(port)
    _as(cluster.user, str(Path(cluster.bin_dir) / "pg_ctl"), "-D", str(pgdata), "-w", "-t",
        "60", "-l", str(Path(cluster.base) / f"node-{port}.log"), "start")


def down(base: Path = DEFAULT_BASE) -> None:
    """Stop every node of the cluster in ``base`` and remove its files."""
    cluster = load(base)
    if cluster is not None:
        for p in cluster.ports:
            if (cluster.pgdata(p) / "postmaster.pid").exists():
                try:
                    _as(cluster.user, str(Path(cluster.bin_dir) / "pg_ctl"), "-D",
                        str(cluster.pgdata(p)), "-w", "-t", "60", "-m", "immediate", "stop")
                except RuntimeError:
                    time.sleep(0.5)  # already stopping: its files go anyway
    shutil.rmtree(base, ignore_errors=True)


def _say(line: str, *, error: bool = False) -> None:
    (sys.stderr if error else sys.stdout).write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neonpro.devtools.citus",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["up", "url", "down"])
    parser.add_argument("--base", type=Path, default=DEFAULT_BASE)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"the coordinator's; workers take the next ones ({DEFAULT_PORT})")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            _say(up(args.base, args.port, args.workers).url())
        elif args.action == "url":
            cluster = load(args.base)
            if cluster is None or not running(cluster):
                _say("no local Citus cluster is running (python -m neonpro.devtools.citus up)",
                     error=True)
                return 1
            _say(cluster.url())
        else:
            down(args.base)
            _say("stopped and removed")
    except (CitusUnavailable, RuntimeError, psycopg.Error) as exc:
        _say(f"citus: {exc}", error=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
