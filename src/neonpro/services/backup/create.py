"""Take a backup: three pg_dumps in one exported snapshot, the manifest read in that same
snapshot, the erasure ledger beside them, and the manifest written last."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import structlog

from neonpro import __version__
from neonpro.adapters.backup import pgdump, server
from neonpro.adapters.backup.pgtools import Target, _major, tool, version
from neonpro.adapters.backup.store import (
    FORMAT,
    LEDGER,
    MANIFEST,
    Backup,
    file_entry,
    new_id,
    now,
    write_json,
)
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.vocabulary import AuditAction
from neonpro.services.backup.common import Timings, key_of, record_event, roles_of, source_of

log = structlog.get_logger(__name__)


def create_backup(container: Container, *, directory: Path | None = None,
                  actor: Actor = SystemActors.BACKUP) -> Backup:
    """Dump the database (service role, one snapshot) and write the manifest last."""
    directory = directory or container.settings.backup_dir
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    roles, key, source = roles_of(container), key_of(container), source_of(container)
    backup_id = new_id()
    work = directory / f"{backup_id}.partial"
    work.mkdir(mode=0o700)
    try:
        manifest = _write_backup(backup_id, work, roles, key, source)
        final = directory / backup_id
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        with suppress(Exception):
            record_event(container, AuditAction.BACKUP, backup_id, {"phase": "create"},
                         ok=False, actor=actor)
        raise
    record_event(container, AuditAction.BACKUP, backup_id, {
        "phase": "create", "bytes": sum(f["bytes"] for f in manifest["files"].values()),
        "tables": len(manifest["tables"]), "encrypted": key is not None}, actor=actor)
    log.info("backup_created", backup=backup_id, seconds=manifest["timings"])
    return Backup(backup_id, final, manifest)


def _write_backup(backup_id: str, work: Path, roles: Roles, key: bytes | None,
                  source: Target) -> dict[str, Any]:
    """Every file of the backup into ``work``, the manifest last; returns the manifest."""
    timings = Timings()
    started = now()
    reads, facts, pg_dump, files = _dump_in_snapshot(work, roles, key, source, timings)
    write_json(work / LEDGER, reads.ledger)
    files["ledger"] = file_entry(work / LEDGER)
    manifest = {
        "format": FORMAT, "id": backup_id, "source": source.describe(),
        "started_at": started.isoformat(), "snapshot_at": facts.now.isoformat(),
        "finished_at": now().isoformat(), "server_version": facts.version,
        "server_major": facts.major,
        "tools": {"pg_dump": version(pg_dump), "pg_dump_major": _major(pg_dump),
                  "neonpro": __version__},
        "compression": pgdump.COMPRESSION, "encrypted": key is not None,
        "migration_head": reads.migration_head, "files": files, "tables": reads.tables,
        "audit": reads.audit, "erasure_ledger_entries": len(reads.ledger),
        "timings": timings.steps,
    }
    write_json(work / MANIFEST, manifest)
    return manifest


def _dump_in_snapshot(work: Path, roles: Roles, key: bytes | None, source: Target,
                      timings: Timings) -> tuple[server.ManifestReads, server.ServerFacts,
                                                 Path, dict[str, Any]]:
    """The three dumps side by side, while this snapshot's transaction reads the manifest."""
    with server.exported_snapshot(source, roles) as snapshot:
        pg_dump = tool("pg_dump", snapshot.facts.major)
        dumps = pgdump.dump_commands(pg_dump, snapshot.id, roles,
                                     snapshot.owner_only_tables())
        with ThreadPoolExecutor(max_workers=len(dumps)) as pool:
            futures = {name.removesuffix(".dump"): pool.submit(
                _timed_dump, timings, args, source, work / name, key)
                for name, args in dumps}
            with timings.step("manifest_stats"):
                reads = snapshot.manifest_reads()
            files: dict[str, Any] = {k: f.result() for k, f in futures.items()}
    return reads, snapshot.facts, pg_dump, files


def _timed_dump(timings: Timings, args: list[str], source: Target, path: Path,
                key: bytes | None) -> dict[str, Any]:
    with timings.step(f"pg_dump {path.name}"):
        return pgdump.dump(args, source, path, key, f"pg_dump ({path.name})")
