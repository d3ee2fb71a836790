"""The backup directory: one sub-directory per backup, its manifest written last.

A directory without a manifest is an interrupted backup: never listed, never restored.
Here: listing and finding backups, new ids, checking files against their manifest,
decrypting the dumps for pg_restore, and reading a backup's erasure ledger.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from neonpro.adapters.backup.stream import (
    check_file,
    decrypt_file,
    parse_key,
    sha256_file,
    write_atomically,
)
from neonpro.domain.backup import (
    DUMPS,
    FORMAT,
    LEDGER,
    MANIFEST,
    VERIFIED,
    Backup,
    BackupError,
    CorruptBackup,
)

log = structlog.get_logger(__name__)

# what new_id makes: a message may repeat one, never what someone typed instead
_BACKUP_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")

__all__ = ["FORMAT", "LEDGER", "MANIFEST", "VERIFIED", "Backup", "BackupDirectory", "catalog",
           "find"]


def _verification(path: Path) -> dict[str, Any] | None:
    file = path / VERIFIED
    if not file.is_file():
        return None
    data: dict[str, Any] = json.loads(file.read_text())
    return data


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
            out.append(Backup(child.name, child, data, _verification(child)))
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


class BackupDirectory:
    """The :class:`~neonpro.domain.ports_backup.BackupStore` of one directory; ``secret``
    is the backup key (base64), read only when a dump is decrypted."""

    def __init__(self, directory: Path, secret: str | None) -> None:
        self._directory = directory
        self._secret = secret

    @property
    def directory(self) -> Path:
        return self._directory

    def catalog(self) -> list[Backup]:
        return catalog(self._directory)

    def find(self, backup_id: str) -> Backup:
        return find(self._directory, backup_id)

    def start(self) -> tuple[str, Path]:
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        backup_id = new_id()
        work = self._directory / f"{backup_id}.partial"
        work.mkdir(mode=0o700)
        return backup_id, work

    def write_ledger(self, work: Path, entries: list[dict[str, Any]]) -> dict[str, Any]:
        write_json(work / LEDGER, entries)
        return file_entry(work / LEDGER)

    def publish(self, backup_id: str, work: Path, manifest: dict[str, Any]) -> Backup:
        write_json(work / MANIFEST, manifest)
        final = self._directory / backup_id
        work.rename(final)
        return Backup(backup_id, final, manifest)

    def discard(self, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)

    def delete(self, backup: Backup) -> None:
        shutil.rmtree(backup.path)

    def drop_partials(self, older_than: datetime) -> None:
        directory = self._directory
        for partial in directory.glob("*.partial") if directory.is_dir() else []:
            if datetime.fromtimestamp(partial.stat().st_mtime, UTC) < older_than:
                shutil.rmtree(partial, ignore_errors=True)

    def check_files(self, backup: Backup) -> None:
        check_files(backup)

    def plain_files(self, backup: Backup) -> AbstractContextManager[dict[str, Path]]:
        key = None if self._secret is None else parse_key(self._secret)
        return plain_files(backup, key)

    def ledger(self, backup: Backup) -> list[dict[str, Any]]:
        return backup_ledger(backup)

    def record_verification(self, backup: Backup, report: Mapping[str, Any]) -> None:
        write_json(backup.path / VERIFIED, dict(report))
