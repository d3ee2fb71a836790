"""The composition root: one place that builds settings, the database, crypto and units of work.

The API, the CLI and the tests all build a :class:`Container`; nothing is created until
first asked for.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from neonpro.adapters.audit_chain import SqlAuditChain
from neonpro.adapters.auth import Argon2Passwords
from neonpro.adapters.backup.pgdump import PgDumpTool
from neonpro.adapters.backup.pitr_cluster import PgBackRestHost
from neonpro.adapters.backup.scratch import PgScratchServer
from neonpro.adapters.backup.store import BackupDirectory
from neonpro.adapters.checkpoints import CheckpointWriter
from neonpro.adapters.crypto import (
    BlindIndexer,
    FieldCipher,
    KeyRing,
    load_keyring,
    promote_blind_index_key,
    remove_key_from_file,
)
from neonpro.adapters.db.audit import seal_pending
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.health import check_health
from neonpro.adapters.db.hot import HotStatement
from neonpro.adapters.db.keys_sql import SqlKeyStore
from neonpro.adapters.db.operations import SqlDatabaseOps
from neonpro.adapters.db.sealer import BackgroundCheckpointer, BackgroundSealer
from neonpro.adapters.db.uow import SqlUnitOfWork
from neonpro.adapters.metrics import Metrics
from neonpro.config import Settings, get_settings
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.backup import BackupPolicy, Target
from neonpro.domain.signin import ThrottleLimits
from neonpro.services import erasure

log = structlog.get_logger(__name__)
# every authenticated request asks it: compiled once, run on the driver
_SESSION_LIVE = HotStatement(text("SELECT neonpro_session_live(:token, :user, :clinic, :role)"))


class Container:
    """Lazily wired application objects."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        database_url: str | None = None,
        keyring: KeyRing | None = None,
    ) -> None:
        self._settings = settings
        self._database_url = database_url
        self._keyring = keyring
        self._sealer: BackgroundSealer | None = None
        self._checkpointer: BackgroundCheckpointer | None = None
        self.metrics: Metrics | None = None

    @cached_property
    def settings(self) -> Settings:
        return self._settings if self._settings is not None else get_settings()

    @cached_property
    def database(self) -> Database:
        return Database(self.settings, url=self._database_url)

    @cached_property
    def keyring(self) -> KeyRing:
        return self._keyring if self._keyring is not None else load_keyring(self.settings)

    @cached_property
    def cipher(self) -> FieldCipher:
        return FieldCipher(self.keyring)

    @cached_property
    def blind_indexer(self) -> BlindIndexer:
        return BlindIndexer(self.keyring)

    def uow(self, clinic_id: uuid.UUID, actor: Actor) -> SqlUnitOfWork:
        """A tenant unit of work: one transaction in ``clinic_id``, row-level security on."""
        return SqlUnitOfWork(self.database, self.cipher, self.blind_indexer, actor, clinic_id)

    def session_live(self, token_id: str, user_id: uuid.UUID, clinic_id: uuid.UUID,
                     role: str) -> bool:
        """Whether a token's session is live: issued (for a clinic that exists), not
        signed out, revoked or expired, and its membership still active in that role
        (``neonpro_session_live``; every transaction the token opens checks it again)."""
        # one statement, autocommit: no BEGIN and ROLLBACK round trips around it
        params = {"token": token_id, "user": user_id, "clinic": clinic_id, "role": role}
        conn, live = self.database.checked_out(
            "service", lambda c: bool(_SESSION_LIVE.scalar(c, params)),
            autocommit=True)
        conn.close()
        return live

    def admin_uow(self, clinic_id: uuid.UUID, actor: Actor) -> SqlUnitOfWork:
        """The service role scoped by our own queries to one clinic: for audited
        administrative work the application role may not do, such as blocking a record
        (row-level security would hide the row from it mid-update)."""
        return SqlUnitOfWork(self.database, self.cipher, self.blind_indexer, actor, clinic_id,
                             service=True)

    def legal_hold_uow(self, clinic_id: uuid.UUID, actor: Actor) -> SqlUnitOfWork:
        """The legal-hold login in ``clinic_id``: reads records blocked under a legal hold,
        nothing else (``services.erasure.legal_hold_read`` checks role and justification
        and audits the read first)."""
        return SqlUnitOfWork(self.database, self.cipher, self.blind_indexer, actor, clinic_id,
                             role=self.database.roles.legal_hold)

    @cached_property
    def signin_limits(self) -> ThrottleLimits:
        """Sign-in throttling, from the settings (domain/signin.py)."""
        s = self.settings
        return ThrottleLimits(
            pair=s.login_max_failures, account=s.login_account_max_failures,
            address=s.login_address_max_failures,
            window=timedelta(minutes=s.login_failure_window_minutes),
            first_block=timedelta(minutes=s.login_lockout_minutes),
            longest_block=timedelta(days=1), trust_for=timedelta(days=s.login_trust_days))

    def service_uow(self, actor: Actor) -> SqlUnitOfWork:
        """A cross-clinic unit of work with the service role (audited administrative work)."""
        return SqlUnitOfWork(
            self.database, self.cipher, self.blind_indexer, actor, None, service=True
        )

    @cached_property
    def checkpoint_key(self) -> bytes:
        """The key of signatures made before audit key ids (checkpoint files of format v1,
        retention cuts without a key id); new ones use ``keyring.active_audit_key``."""
        return self.keyring.legacy_audit_key

    @cached_property
    def checkpoints(self) -> CheckpointWriter:
        """Signed checkpoints of every chain's head (files, and the optional sinks)."""
        return CheckpointWriter(self.database, self.keyring, self.settings)

    # ports of the audit, database and LGPD services (domain/ports_audit.py,
    # ports_database.py, ports_lgpd.py), each built on first use
    @cached_property
    def audit_chain(self) -> SqlAuditChain:
        return SqlAuditChain(self)

    @cached_property
    def database_ops(self) -> SqlDatabaseOps:
        return SqlDatabaseOps(lambda: self.database, lambda: self.keyring)

    def start_sealer(self, interval: float = 0.5) -> BackgroundSealer:
        """Seal audit events in the background (the API); ``close()`` stops it."""
        if self._sealer is None:
            self._sealer = BackgroundSealer(self.database, self.keyring, interval,
                                            metrics=self.metrics)
            self._sealer.start()
        return self._sealer

    def start_checkpointer(self) -> BackgroundCheckpointer:
        """Take a checkpoint every ``audit_checkpoint_interval_s`` (the API); ``close()``
        stops it after a last one."""
        if self._checkpointer is None:
            self._checkpointer = BackgroundCheckpointer(
                self.checkpoints, self.settings.audit_checkpoint_interval_s)
            self._checkpointer.start()
        return self._checkpointer

    def seal_audit(self, actor: Actor = SystemActors.SCHEDULER) -> int:
        """Seal every pending audit event (the CLI does this before it exits)."""
        return seal_pending(self.database, self.keyring, actor)

    # ---- backups: the ports of domain/ports_backup.py (this container is a BackupSite)
    def backup_store(self, directory: Path | None = None) -> BackupDirectory:
        return BackupDirectory(directory or self.settings.backup_dir, self._backup_secret)

    @cached_property
    def dump_tool(self) -> PgDumpTool:
        return PgDumpTool(self.scratch_server.source, self.database.roles, self._backup_secret)

    @cached_property
    def scratch_server(self) -> PgScratchServer:
        return PgScratchServer(self.database.owner_url, self.database.roles, self.settings,
                               self.keyring)

    @property
    def backup_policy(self) -> BackupPolicy:
        s = self.settings
        return BackupPolicy(s.backup_keep_daily, s.backup_keep_weekly, s.backup_keep_monthly)

    @property
    def _backup_secret(self) -> str | None:
        key = self.settings.backup_key
        return None if key is None else key.get_secret_value()

    @contextmanager
    def restored(self, target: Target) -> Iterator[Container]:
        """The container of a restored database on this one's server, with its keys."""
        box = Container(self.settings, database_url=target.url(), keyring=self.keyring)
        try:
            yield box
        finally:
            box.close()

    def health(self) -> dict[str, Any]:
        return check_health(self.database)

    @cached_property
    def pitr_host(self) -> PgBackRestHost:
        """pgBackRest and the cluster of NEONPRO_PITR_DIR (services/pitr's PitrHost)."""
        return PgBackRestHost(self.settings.pitr_dir)

    def reapply_erasures(self, actor: Actor) -> int:
        """BackupSite's re-application of this database's erasure ledger (the erasure
        service, over this container's units of work)."""
        return erasure.reapply_erasures(self, actor)

    def stop_sealer(self) -> None:
        """Stop the background checkpointer and sealer, if they run (after their pass)."""
        if self._checkpointer is not None:
            checkpointer, self._checkpointer = self._checkpointer, None
            checkpointer.stop()
        if self._sealer is not None:
            sealer, self._sealer = self._sealer, None
            try:
                sealer.stop()
            except (SQLAlchemyError, RuntimeError) as exc:
                log.warning("audit_sealer_stop_failed", error=type(exc).__name__)

    def close(self, *, seal: bool = True) -> None:
        """Seal pending audit events, release pools, stop an embedded server we started."""
        if "database" not in self.__dict__:
            return
        self.stop_sealer()
        if seal and self.database.connected:
            try:
                self.seal_audit()
            except (SQLAlchemyError, RuntimeError) as exc:
                log.warning("audit_seal_on_close_failed", error=type(exc).__name__)
        self.database.close()

    # ------------------------------------------------ ports of sign-in and key upkeep
    @cached_property
    def passwords(self) -> Argon2Passwords:
        """The sign-in service's password hashing (domain/ports_auth.Passwords)."""
        return Argon2Passwords()

    @cached_property
    def key_store(self) -> SqlKeyStore:
        """Key upkeep's SQL (domain/ports_keys.KeyStore), in service transactions."""
        return SqlKeyStore(self.service_uow)

    def blind_indexer_with(self, blind_index_key: bytes) -> BlindIndexer:
        ring = self.keyring
        return BlindIndexer(KeyRing(keys=ring.keys, active_id=ring.active_id,
                                    blind_index_key=blind_index_key))

    def remove_key_from_file(self, path: Path, key_id: str) -> None:
        remove_key_from_file(path, key_id)

    def promote_blind_index_key(self, path: Path, key: bytes, *, retired_at: str) -> None:
        promote_blind_index_key(path, key, retired_at=retired_at)
