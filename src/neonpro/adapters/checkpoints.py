"""Signed checkpoints of the chains' heads, written where the database cannot reach them.

A checkpoint is each chain's head (clinic, chain, seq, hash) signed with the active audit
key (HMAC-SHA256, ``domain.audit_chain.sign_head``). ``verify --checkpoints`` then fails
unless every chain still has exactly that hash at that seq. Each checkpoint goes to:

* a file in ``NEONPRO_AUDIT_CHECKPOINT_DIR`` (written whole, synced, then renamed into
  place), the place to keep out of the database operators' reach (another host, an
  append-only bucket);
* optionally ``NEONPRO_AUDIT_CHECKPOINT_URL`` (an HTTP POST of the same JSON) and
  ``NEONPRO_AUDIT_CHECKPOINT_SYSLOG`` (one ``neonpro-checkpoint {...}`` line per head, a
  format ``audit verify --checkpoints`` reads back);
* the system chain of the database itself (a ``VERIFY`` event naming the heads), so that
  deleting a whole clinic's chain or its tail is detected even without the files, as
  long as the system chain is intact up to there.

Only heads that moved since this writer's previous checkpoint are written (all of them on
its first): every file is verified on its own, so a directory of them binds every head.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import secrets
import tempfile
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db.audit import (
    AUDIT,
    LINE_MARK,
    SYSTEM_CHAIN,
    chain_heads,
    record_heads,
    seal_pending,
    sign_heads,
)
from neonpro.adapters.db.database import Database
from neonpro.config import Settings
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.audit_reports import CheckpointResult

log = structlog.get_logger(__name__)
Head = tuple[str, uuid.UUID, int, bytes]
_HTTP_TIMEOUT_S = 10


class CheckpointWriter:
    """Seal, read the heads, sign the ones that moved, write them out."""

    def __init__(self, db: Database, keyring: KeyRing, settings: Settings,
                 actor: Actor = SystemActors.SCHEDULER) -> None:
        self._db = db
        self._keyring = keyring
        self._settings = settings
        self._actor = actor
        self._last: dict[tuple[str, uuid.UUID], tuple[int, bytes]] = {}

    def take(self, directory: Path | None = None, *, full: bool = False,
             path: Path | None = None) -> CheckpointResult:
        """One checkpoint: a new file in ``directory`` (default: the setting), or ``path``;
        and the other sinks. ``full``: every head, moved or not."""
        seal_pending(self._db, self._keyring, self._actor)
        heads = chain_heads(self._db, self._actor)
        moved = heads if full or not self._last else [
            h for h in heads if self._last.get((h[0], h[1])) != (h[2], h[3])]
        if not moved:
            return CheckpointResult(None, 0)
        document = sign_heads(self._keyring, moved)
        if path is None:
            path = write_checkpoint(directory or self._settings.audit_checkpoint_dir, document)
        else:
            write_checkpoint(path.parent, document, path.name)
        record_heads(self._db, self._keyring, self._actor, moved)
        self._publish(document)
        self._last.update({(h[0], h[1]): (h[2], h[3]) for h in heads})
        # the system chain moved by the record itself: not a reason for the next checkpoint
        # (only its entry is taken from this second read: another chain that moved since
        # the first must still be signed next time)
        self._last.update({(h[0], h[1]): (h[2], h[3]) for h in chain_heads(self._db, self._actor)
                           if (h[0], h[1]) == (AUDIT, SYSTEM_CHAIN)})
        log.info("audit_checkpoint", heads=len(moved), file=path.name)
        return CheckpointResult(path, len(moved))

    def _publish(self, document: dict[str, Any]) -> None:
        """The optional sinks; a failure is logged, never fatal (the file is written)."""
        url = self._settings.audit_checkpoint_url
        if url:
            try:
                post_checkpoint(url, document)
            except OSError as exc:
                log.warning("audit_checkpoint_post_failed", error=type(exc).__name__)
        target = self._settings.audit_checkpoint_syslog
        if target:
            try:
                syslog_checkpoint(target, document)
            except OSError as exc:
                log.warning("audit_checkpoint_syslog_failed", error=type(exc).__name__)


def write_checkpoint(directory: Path, document: dict[str, Any], name: str | None = None,
                     ) -> Path:
    """Write ``document`` as a new file (``name``, or a timestamped one) in ``directory``:
    complete or absent, synced."""
    directory = directory.absolute()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / (name or f"checkpoint-{stamp}-{secrets.token_hex(3)}.json")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def post_checkpoint(url: str, document: dict[str, Any]) -> None:
    """POST the checkpoint's JSON; an answer other than 2xx is an error."""
    request = urllib.request.Request(  # noqa: S310  (the setting allows http and https only)
        url, data=json.dumps(document).encode(), method="POST",
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as answer:  # noqa: S310
        if not 200 <= answer.status < 300:  # noqa: PLR2004
            raise OSError(f"checkpoint endpoint answered {answer.status}")


def checkpoint_lines(document: dict[str, Any]) -> list[str]:
    """One self-contained line per head (what syslog receives)."""
    return [LINE_MARK + json.dumps({**head, "key_id": document["key_id"]},
                                   separators=(",", ":"))
            for head in document["checkpoints"]]


def syslog_checkpoint(target: str, document: dict[str, Any]) -> None:
    """Send each head to syslog: a socket path (``/dev/log``) or ``host:port`` (UDP)."""
    address: str | tuple[str, int]
    if target.startswith("/"):
        address = target
    else:
        host, _, port = target.rpartition(":")
        address = (host or "localhost", int(port or 514))
    handler = logging.handlers.SysLogHandler(
        address=address, facility=logging.handlers.SysLogHandler.LOG_AUTH)
    try:
        for line in checkpoint_lines(document):
            handler.emit(logging.makeLogRecord({"msg": line, "levelno": logging.INFO,
                                                "levelname": "INFO"}))
    finally:
        handler.close()
