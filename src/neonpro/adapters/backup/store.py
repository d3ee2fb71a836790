"""The backup directory: one sub-directory per backup, its manifest written last.

A directory without a manifest is an interrupted backup: never listed, never restored.
Here: listing and finding backups, new ids, checking files against their manifest,
decrypting the dumps for pg_restore, and reading a backup's erasure ledger.
"""

from __future__ import annotations

import json
import re
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from neonpro.adapters.backup.pgdump import DUMPS
from neonpro.adapters.backup.pgtools import BackupError
from neonpro.adapters.backup.stream import (
    CorruptBackup,
    check_file,
    decrypt_file,
    sha256_file,
    write_atomically,
)

log = structlog.get_logger(__name__)

FORMAT = 1
LEDGER, MANIFEST, VERIFIED = "erasure-ledger.json", "manifest.json", "verify.json"

# what new_id makes: a message may repeat one, never what someone typed instead
_BACKUP_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")


@dataclass(frozen=True)
class Backup:
    id: str
    path: Path
    manifest: dict[str, Any]

    @property
    def finished_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["finished_at"])

    @property
    def snapshot_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["snapshot_at"])

    @property
    def verification(self) -> dict[str, Any] | None:
        file = self.path / VERIFIED
        if not file.is_file():
            return None
        data: dict[str, Any] = json.loads(file.read_text())
        return data

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


def catalog(directory: Path) -> list[Backup]:
    """Every complete backup in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    out = []
    for child in sorted(directory.iterdir()):
        manifest = child / MANIFEST
        if child.is_dir() and manifest.is_file():
            try:
                data = json.loads(manifest.read_text())
            except (OSError, ValueError):
                log.warning("backup_manifest_unreadable", backup=child.name)
                continue
            out.append(Backup(child.name, child, data))
    out.sort(key=lambda b: b.finished_at)
    return out


def find(directory: Path, backup_id: str) -> Backup:
    for backup in catalog(directory):
        if backup.id == backup_id:
            return backup
    shown = repr(backup_id) if _BACKUP_ID.fullmatch(backup_id) else "(not a backup id)"
    raise BackupError(f"no complete backup {shown} in {directory}")


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return now().strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def write_json(path: Path, data: Any) -> None:
    write_atomically(path, json.dumps(data, indent=2, default=str).encode())


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest entry of a plain file: name, SHA-256, size."""
    return {"name": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def check_files(backup: Backup) -> None:
    """Every file present, with its manifest size and SHA-256: ``CorruptBackup`` otherwise."""
    if backup.manifest.get("format") != FORMAT:
        raise CorruptBackup(f"backup {backup.id} has an unknown manifest format")
    for entry in backup.manifest["files"].values():
        check_file(backup.path / entry["name"], entry["sha256"], entry["bytes"])


@contextmanager
def plain_files(backup: Backup, key: bytes | None) -> Iterator[dict[str, Path]]:
    """The dump files ready for pg_restore (decrypted into a private temp dir if needed)."""
    if not backup.manifest["encrypted"]:
        yield {name: backup.path / name for name in DUMPS}
        return
    if key is None:
        raise BackupError(f"backup {backup.id} is encrypted: set NEONPRO_BACKUP_KEY")
    with tempfile.TemporaryDirectory(prefix="neonpro-restore-", dir=backup.path.parent) as tmp:
        plain = {name: Path(tmp) / name for name in DUMPS}
        for name, path in plain.items():
            decrypt_file(backup.path / name, path, key)
        yield plain


def backup_ledger(backup: Backup) -> list[dict[str, Any]]:
    """The erasure ledger saved with ``backup`` (empty, and a warning, if unusable)."""
    file = backup.path / LEDGER
    info = backup.manifest["files"].get("ledger")
    if info and file.is_file() and sha256_file(file) == info["sha256"]:
        data: list[dict[str, Any]] = json.loads(file.read_text())
        return data
    log.warning("backup_ledger_unusable", backup=backup.id)
    return []


def later_ledgers(backup: Backup) -> list[dict[str, Any]]:
    """Ledger entries from every backup taken after ``backup`` (the restore re-applies them)."""
    entries: list[dict[str, Any]] = []
    for other in catalog(backup.path.parent):
        if other.finished_at > backup.finished_at:
            entries += backup_ledger(other)
    return entries
