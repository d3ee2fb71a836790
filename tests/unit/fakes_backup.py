"""In-memory ports of the backup services (``domain/ports_backup.py``): a backup directory,
dump tools, a database server and the site that holds them, each recording what was asked
of it, so the use cases' rules run in milliseconds."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from neonpro.domain.actors import Actor
from neonpro.domain.backup import (
    FORMAT,
    Backup,
    BackupError,
    BackupPolicy,
    ChainCheck,
    Dumped,
    LedgerUnreadable,
    ManifestReads,
    ServerFacts,
    Target,
    Timings,
)
from tests.unit.fakes import FakeUnitOfWork

LIVE = Target("db.example", 5432, "owner", "secret", "neonpro")


def manifest(finished_at: datetime, **extra: Any) -> dict[str, Any]:
    return {"format": FORMAT, "finished_at": finished_at.isoformat(),
            "snapshot_at": finished_at.isoformat(), "encrypted": False, "server_major": 17,
            "files": {}, "tables": {}, "audit": {"chains": {}}, "migration_head": "x"} | extra


class FakeStore:
    def __init__(self, directory: Path = Path("/backups")) -> None:
        self._directory = directory
        self.backups: dict[str, Backup] = {}
        self.ledgers: dict[str, list[dict[str, Any]]] = {}
        self.discarded: list[Path] = []
        self.deleted: list[str] = []
        self.partials_before: list[datetime] = []
        self.verifications: dict[str, dict[str, Any]] = {}
        self.checked: list[str] = []

    @property
    def directory(self) -> Path:
        return self._directory

    def add(self, backup: Backup, ledger: list[dict[str, Any]] | None = None) -> Backup:
        self.backups[backup.id] = backup
        self.ledgers[backup.id] = ledger or []
        return backup

    def catalog(self) -> list[Backup]:
        return sorted(self.backups.values(), key=lambda b: b.finished_at)

    def find(self, backup_id: str) -> Backup:
        if backup_id not in self.backups:
            raise BackupError("no complete backup (not a backup id) in /backups")
        return self.backups[backup_id]

    def start(self) -> tuple[str, Path]:
        backup_id = f"b-{len(self.backups) + len(self.discarded)}"
        return backup_id, self._directory / f"{backup_id}.partial"

    def write_ledger(self, work: Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.ledgers[work.name.removesuffix(".partial")] = list(entries)
        return {"name": "erasure-ledger.json", "sha256": "0" * 64, "bytes": 2}

    def publish(self, backup_id: str, work: Path, manifest: dict[str, Any]) -> Backup:
        return self.add(Backup(backup_id, self._directory / backup_id, manifest),
                        self.ledgers.get(backup_id))

    def discard(self, work: Path) -> None:
        self.discarded.append(work)

    def delete(self, backup: Backup) -> None:
        self.deleted.append(backup.id)
        del self.backups[backup.id]

    def drop_partials(self, older_than: datetime) -> None:
        self.partials_before.append(older_than)

    def check_files(self, backup: Backup) -> None:
        self.checked.append(backup.id)

    @contextmanager
    def plain_files(self, backup: Backup) -> Iterator[dict[str, Path]]:
        yield {"schema.dump": backup.path / "schema.dump"}

    def ledger(self, backup: Backup) -> list[dict[str, Any]]:
        return list(self.ledgers.get(backup.id, []))

    def record_verification(self, backup: Backup, report: Mapping[str, Any]) -> None:
        self.verifications[backup.id] = dict(report)


@dataclass
class FakeDumpTool:
    key: bytes | None = None
    fail: BaseException | None = None
    ledger: list[dict[str, Any]] = field(default_factory=list)
    restored: list[Target] = field(default_factory=list)

    @property
    def encrypted(self) -> bool:
        return self.key is not None

    def dump(self, work: Path, timings: Timings) -> Dumped:
        if self.fail is not None:
            raise self.fail
        with timings.step("manifest_stats"):
            reads = ManifestReads({"patients": {"rows": 3, "checksum": "c", "method": "md5"}},
                                  {"chains": {}}, "head", list(self.ledger))
        facts = ServerFacts(datetime(2031, 1, 1, tzinfo=UTC), "17.2", 17)
        files = {"data": {"name": "data.dump", "sha256": "1" * 64, "bytes": 10}}
        return Dumped(reads, facts, {"pg_dump": "pg_dump 18", "pg_dump_major": 18}, files)

    def restore(self, target: Target, files: dict[str, Path], jobs: int,
                manifest: dict[str, Any]) -> None:
        self.restored.append(target)


@dataclass
class FakeServer:
    """Databases by name: ``empty`` says which exist and are empty; a database whose
    ledger is in ``unreadable`` does not answer."""

    source_: Target = LIVE
    databases: dict[str, bool] = field(default_factory=lambda: {"neonpro": False})
    ledgers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unreadable: set[str] = field(default_factory=set)
    held: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    stats: tuple[dict[str, dict[str, Any]], dict[str, Any]] = ({}, {"chains": {}})
    major: int = 17
    chains: list[ChainCheck] = field(default_factory=list)
    rpo: tuple[float | None, str] = (None, "no WAL archiving")

    @property
    def source(self) -> Target:
        return self.source_

    def target(self, url: str) -> Target:
        return self.source_.with_database(url.rsplit("/", 1)[-1])

    def exists(self, target: Target) -> bool:
        return target.database in self.databases

    def is_empty(self, target: Target) -> bool:
        return self.databases.get(target.database, True)

    def create(self, target: Target, *, replace: bool) -> None:
        self.calls.append(("create", target.database))
        self.databases[target.database] = True

    def drop(self, target: Target) -> None:
        self.calls.append(("drop", target.database))
        self.databases.pop(target.database, None)

    def ensure_roles(self, target: Target) -> None:
        self.calls.append(("roles", target.database))

    def server_major(self, target: Target) -> int:
        return self.major

    def hold(self, target: Target, reason: str) -> None:
        self.held[target.database] = reason

    def lift(self, target: Target) -> None:
        self.calls.append(("lift", target.database))
        self.held.pop(target.database, None)

    def read_stats(self, target: Target, methods: dict[str, str]
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        return self.stats

    def read_ledger(self, target: Target) -> list[dict[str, Any]]:
        if target.database in self.unreadable:
            raise LedgerUnreadable("OperationalError")
        return list(self.ledgers.get(target.database, []))

    def insert_ledger(self, target: Target, entries: list[dict[str, Any]]) -> None:
        mine = self.ledgers.setdefault(target.database, [])
        mine += [e for e in entries if e["id"] not in {m["id"] for m in mine}]

    def migrate(self, target: Target) -> None:
        self.calls.append(("migrate", target.database))

    def verify_audit(self, target: Target) -> list[ChainCheck]:
        return list(self.chains)

    def measure_wal_rpo(self, *, wait_s: float) -> tuple[float | None, str]:
        return self.rpo


@dataclass
class FakeSite:
    """A database and its backup tools; ``restored`` opens the site of another database
    on the same fake server (sharing it, as the real ones share the cluster)."""

    store: FakeStore = field(default_factory=FakeStore)
    dumps: FakeDumpTool = field(default_factory=FakeDumpTool)
    server: FakeServer = field(default_factory=FakeServer)
    policy: BackupPolicy = field(default_factory=lambda: BackupPolicy(7, 4, 12))
    healthy: bool = True
    uows: list[FakeUnitOfWork] = field(default_factory=list)
    sealed: int = 0
    opened: list[FakeSite] = field(default_factory=list)

    def service_uow(self, actor: Actor) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(actor, None)
        self.uows.append(uow)
        return uow

    def seal_audit(self, actor: Actor) -> int:
        self.sealed += 1
        return 0

    def backup_store(self, directory: Path | None = None) -> FakeStore:
        return self.store

    @property
    def dump_tool(self) -> FakeDumpTool:
        return self.dumps

    @property
    def scratch_server(self) -> FakeServer:
        return self.server

    @property
    def backup_policy(self) -> BackupPolicy:
        return self.policy

    @contextmanager
    def restored(self, target: Target) -> Iterator[FakeSite]:
        other = FakeSite(self.store, self.dumps, FakeServer(
            target, self.server.databases, self.server.ledgers, self.server.unreadable,
            self.server.held, self.server.calls), self.policy, self.healthy)
        self.opened.append(other)
        yield other

    def health(self) -> dict[str, Any]:
        return {"ok": self.healthy}

    def reapply_erasures(self, actor: Actor) -> int:
        return len(self.server.ledgers.get(self.server.source.database, []))

    def events(self) -> list[dict[str, Any]]:
        """Every audit event committed through this site's units of work."""
        return [e for u in self.uows if u.commits for e in u.audit.events]


def entry(decided_at: datetime, patient: uuid.UUID | None = None) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "patient_id": str(patient or uuid.uuid4()),
            "decided_at": decided_at.isoformat()}
