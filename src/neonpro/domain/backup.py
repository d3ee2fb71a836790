"""What a logical backup is, to the services that take, check and restore one: the backup
and its manifest's layout, the database a tool works on, what a dump reports back, the
retention policy, and the errors of the backup tools (docs/operations.md).

Pure values: the files, the servers and the tools are the adapters' business
(``adapters/backup``), reached through the ports of :mod:`neonpro.domain.ports_backup`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote

from neonpro.domain.errors import OperationFailed

T = TypeVar("T")

FORMAT: Final = 1  # the manifest's format
LEDGER, MANIFEST, VERIFIED = "erasure-ledger.json", "manifest.json", "verify.json"
SCHEMA, DATA, OWNER_DATA = "schema.dump", "data.dump", "owner-data.dump"
DUMPS: Final = (SCHEMA, DATA, OWNER_DATA)
COMPRESSION: Final = "1"  # gzip level 1 (every pg_dump since 15 has gzip; level 1 is ~4x level 6)


class BackupError(OperationFailed):
    """A backup step failed; the message is safe to show (no personal data)."""


class ToolError(OperationFailed):
    """A PostgreSQL tool failed or is missing; the message is safe to show. Not a
    :class:`BackupError`: `neonpro backup reapply` answers only those with its exit 4."""


class CorruptBackup(OperationFailed):
    """The file does not match its manifest, or does not decrypt: never restored.
    `neonpro backup` answers it with its own exit code (3)."""


class LedgerUnreadable(OperationFailed):
    """A database's erasure ledger could not be read; ``cause`` names the driver's error
    class (never its text, which may quote values)."""

    code = "ledger_unreadable"

    def __init__(self, cause: str) -> None:
        super().__init__(f"the erasure ledger could not be read ({cause})")
        self.cause = cause


@dataclass(frozen=True)
class Target:
    """One database on a PostgreSQL server (the adapters pass it to libpq's environment,
    never on a command line)."""

    host: str
    port: int
    user: str
    password: str | None
    database: str

    def with_database(self, database: str) -> Target:
        return Target(self.host, self.port, self.user, self.password, database)

    def scratch(self, label: str) -> Target:
        """A new database name on the same server, for a restore that is thrown away."""
        return self.with_database(f"neonpro_{label}_{uuid.uuid4().hex[:12]}")

    def url(self) -> str:
        """A psycopg URL (with the password: never log it)."""
        cred = quote(self.user, safe="")
        if self.password:
            cred += ":" + quote(self.password, safe="")
        return f"postgresql://{cred}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    def describe(self) -> str:
        """Host, port and database name: safe for logs and messages."""
        return f"{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class Backup:
    """A complete backup: its id, its directory, its manifest and its last verification
    (``verify.json``) as the store read them."""

    id: str
    path: Path  # where the store keeps it
    manifest: dict[str, Any]
    verification: dict[str, Any] | None = None

    @property
    def finished_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["finished_at"])

    @property
    def snapshot_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["snapshot_at"])

    @property
    def verified(self) -> bool:
        v = self.verification
        return bool(v and v.get("ok"))

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {"id": self.id, "finished_at": m["finished_at"], "encrypted": m["encrypted"],
                "bytes": sum(f["bytes"] for f in m["files"].values()),
                "migration_head": m["migration_head"],
                "rows": sum(t["rows"] for t in m["tables"].values()),
                "verified": self.verified}


@dataclass(frozen=True)
class ServerFacts:
    """What a snapshot's own transaction says about its server."""

    now: datetime
    version: str
    major: int


@dataclass(frozen=True)
class ManifestReads:
    """What a manifest records of the database, read in the dump's snapshot."""

    tables: dict[str, dict[str, Any]]
    audit: dict[str, Any]
    migration_head: str | None
    ledger: list[dict[str, Any]]


@dataclass(frozen=True)
class Dumped:
    """The three dumps of a backup and what was read in their snapshot: ``files`` maps
    each dump's name (no suffix) to its manifest entry; ``tools``, the pg_dump used."""

    reads: ManifestReads
    facts: ServerFacts
    tools: dict[str, Any]
    files: dict[str, Any]


@dataclass(frozen=True)
class ChainCheck:
    """One clinic's audit chain, as verified in a restored copy."""

    clinic_id: uuid.UUID
    sealed: int
    broken_at: int | None
    reason: str | None


@dataclass(frozen=True)
class BackupPolicy:
    """Grandfather-father-son retention: how many days, ISO weeks and months keep their
    newest backup."""

    keep_daily: int
    keep_weekly: int
    keep_monthly: int


@dataclass
class Timings:
    """Seconds per named step, as a report shows them."""

    steps: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        with self.step(name):
            return fn(*args)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = round(time.perf_counter() - start, 3)
