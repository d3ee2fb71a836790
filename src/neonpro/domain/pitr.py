"""Point-in-time recovery with pgBackRest: the cluster it protects, as ``setup`` learned
it, and the error of its steps (docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neonpro.domain.errors import OperationFailed


class PitrError(OperationFailed):
    """A point-in-time recovery step failed; the message is safe to show."""


@dataclass(frozen=True)
class Cluster:
    """A PostgreSQL cluster in the ``initdb`` layout, started with ``pg_ctl`` by the
    operating-system account that owns its data directory, and its pgBackRest stanza."""

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


@dataclass(frozen=True)
class DataDirectory:
    """A cluster's data directory: where it really is, who owns it, its major version."""

    path: Path
    owner: str
    version: str
