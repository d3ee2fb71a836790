"""The ports of the backup and point-in-time recovery services: what ``services/backup``
and ``services/pitr`` may ask of the backup directory, the dump tools, the database
server and the pgBackRest cluster. ``adapters/backup`` implements them and the
composition root (:class:`neonpro.bootstrap.Container`, a :class:`BackupSite`) wires them.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from neonpro.domain.actors import Actor
from neonpro.domain.backup import Backup, BackupPolicy, ChainCheck, Dumped, Target, Timings
from neonpro.domain.ports import UnitOfWork


class BackupStore(Protocol):
    """One backup directory: a sub-directory per backup, its manifest written last (a
    directory without one is an interrupted backup, never listed)."""

    @property
    def directory(self) -> Path: ...
    def catalog(self) -> list[Backup]:
        """Every complete backup, oldest first."""
        ...
    def find(self, backup_id: str) -> Backup:
        """``BackupError`` when there is no complete backup of that id."""
        ...
    def start(self) -> tuple[str, Path]:
        """A new backup id and its private work directory (``<id>.partial``)."""
        ...
    def write_ledger(self, work: Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """The erasure ledger beside the dumps; its manifest entry."""
        ...
    def publish(self, backup_id: str, work: Path, manifest: dict[str, Any]) -> Backup:
        """Write the manifest last, then make the work directory the backup."""
        ...
    def discard(self, work: Path) -> None: ...
    def delete(self, backup: Backup) -> None: ...
    def drop_partials(self, older_than: datetime) -> None:
        """Remove interrupted backups last touched before ``older_than``."""
        ...
    def check_files(self, backup: Backup) -> None:
        """Every file present with its manifest size and SHA-256: ``CorruptBackup``."""
        ...
    def plain_files(self, backup: Backup) -> AbstractContextManager[dict[str, Path]]:
        """The dumps ready for pg_restore (decrypted into a private directory if needed)."""
        ...
    def ledger(self, backup: Backup) -> list[dict[str, Any]]:
        """The erasure ledger saved with ``backup`` (empty, and a warning, if unusable)."""
        ...
    def record_verification(self, backup: Backup, report: Mapping[str, Any]) -> None: ...


class DumpTool(Protocol):
    """pg_dump and pg_restore, on the live database and restore targets."""

    @property
    def encrypted(self) -> bool:
        """Whether dumps are encrypted (a backup key is set; ``ValueError`` if malformed)."""
        ...
    def dump(self, work: Path, timings: Timings) -> Dumped:
        """The three dumps of a backup into ``work`` in one exported snapshot, while that
        snapshot's transaction reads what the manifest records."""
        ...
    def restore(self, target: Target, files: dict[str, Path], jobs: int,
                manifest: dict[str, Any]) -> None:
        """pg_restore the dumps into ``target``, a server at least as new as the backup's."""
        ...


class ScratchServer(Protocol):
    """Whole databases on the live database's server, as the operator's (owner's) login:
    restore targets and scratch copies, their roles, the restore hold, and what a restored
    copy is checked against."""

    @property
    def source(self) -> Target:
        """The live database."""
        ...
    def target(self, url: str) -> Target: ...
    def exists(self, target: Target) -> bool: ...
    def is_empty(self, target: Target) -> bool: ...
    def create(self, target: Target, *, replace: bool) -> None: ...
    def drop(self, target: Target) -> None:
        """Drop a scratch copy; a database error is swallowed (it is thrown away anyway)."""
        ...
    def ensure_roles(self, target: Target) -> None: ...
    def server_major(self, target: Target) -> int: ...
    def hold(self, target: Target, reason: str) -> None:
        """Close ``target`` to the application role (the restore hold)."""
        ...
    def lift(self, target: Target) -> None: ...
    def read_stats(self, target: Target, methods: dict[str, str]
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        """Every table's rows and checksum (with the manifest's ``methods``) and the audit
        chain heads, read as a manifest is."""
        ...
    def read_ledger(self, target: Target) -> list[dict[str, Any]]:
        """``target``'s erasure ledger; ``LedgerUnreadable`` when it does not answer."""
        ...
    def insert_ledger(self, target: Target, entries: list[dict[str, Any]]) -> None:
        """Append the ledger entries ``target`` lacks."""
        ...
    def migrate(self, target: Target) -> None: ...
    def verify_audit(self, target: Target) -> list[ChainCheck]: ...
    def measure_wal_rpo(self, *, wait_s: float) -> tuple[float | None, str]:
        """Seconds from a committed write on the live database to its WAL segment being
        archived (None, and why, without archiving)."""
        ...


class BackupSite(Protocol):
    """One database and its backup tools, as the backup use cases see it (the composition
    root is one; so is the site of a database just restored)."""

    def service_uow(self, actor: Actor) -> UnitOfWork: ...
    def seal_audit(self, actor: Actor) -> int: ...
    def backup_store(self, directory: Path | None = None) -> BackupStore:
        """The backup directory (``None``: the configured one)."""
        ...
    @property
    def dump_tool(self) -> DumpTool: ...
    @property
    def scratch_server(self) -> ScratchServer: ...
    @property
    def backup_policy(self) -> BackupPolicy: ...
    def restored(self, target: Target) -> AbstractContextManager[BackupSite]:
        """The site of ``target`` (a restored database), closed on leaving."""
        ...
    def health(self) -> dict[str, Any]:
        """The database's health check (``ok`` and what was checked)."""
        ...
    def reapply_erasures(self, actor: Actor) -> int:
        """Erase again every patient the database's erasure ledger names whose row came
        back unerased; how many."""
        ...

