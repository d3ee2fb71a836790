"""Take a backup: three pg_dumps in one exported snapshot, the manifest read in that same
snapshot, the erasure ledger beside them, and the manifest written last."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from neonpro import __version__
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.backup import COMPRESSION, FORMAT, Backup, Timings
from neonpro.domain.ports_backup import BackupSite, BackupStore, DumpTool
from neonpro.domain.vocabulary import AuditAction
from neonpro.services.backup.common import record_event

log = structlog.get_logger(__name__)


def create_backup(site: BackupSite, *, directory: Path | None = None,
                  actor: Actor = SystemActors.BACKUP) -> Backup:
    """Dump the database (service role, one snapshot) and write the manifest last."""
    store, dumps = site.backup_store(directory), site.dump_tool
    encrypted = dumps.encrypted
    backup_id, work = store.start()
    try:
        manifest = _write_backup(backup_id, work, store, dumps, site.scratch_server.source
                                 .describe(), encrypted=encrypted)
        backup = store.publish(backup_id, work, manifest)
    except BaseException:
        store.discard(work)
        with suppress(Exception):
            record_event(site, AuditAction.BACKUP, backup_id, {"phase": "create"},
                         ok=False, actor=actor)
        raise
    record_event(site, AuditAction.BACKUP, backup_id, {
        "phase": "create", "bytes": sum(f["bytes"] for f in manifest["files"].values()),
        "tables": len(manifest["tables"]), "encrypted": encrypted}, actor=actor)
    log.info("backup_created", backup=backup_id, seconds=manifest["timings"])
    return backup


def _write_backup(backup_id: str, work: Path, store: BackupStore, dumps: DumpTool,
                  source: str, *, encrypted: bool) -> dict[str, Any]:
    """Every file of the backup into ``work`` but the manifest; returns the manifest."""
    timings = Timings()
    started = datetime.now(UTC)
    dumped = dumps.dump(work, timings)
    reads, facts, files = dumped.reads, dumped.facts, dict(dumped.files)
    files["ledger"] = store.write_ledger(work, reads.ledger)
    return {
        "format": FORMAT, "id": backup_id, "source": source,
        "started_at": started.isoformat(), "snapshot_at": facts.now.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(), "server_version": facts.version,
        "server_major": facts.major,
        "tools": dumped.tools | {"neonpro": __version__},
        "compression": COMPRESSION, "encrypted": encrypted,
        "migration_head": reads.migration_head, "files": files, "tables": reads.tables,
        "audit": reads.audit, "erasure_ledger_entries": len(reads.ledger),
        "timings": timings.steps,
    }
