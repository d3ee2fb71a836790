"""The :class:`~neonpro.domain.ports_backup.ScratchServer` of the live database: its
server's databases as the operator (owner) sees them, over :mod:`.server`'s direct
connections (each says why it is not the unit of work), the migrations, and the audit
chains of a restored copy."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import psycopg

from neonpro.adapters.backup import server
from neonpro.adapters.backup.pgtools import target_from_url
from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db import migrate
from neonpro.adapters.db.audit import verify_chains
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.security import Roles
from neonpro.config import Settings
from neonpro.domain.actors import SystemActors
from neonpro.domain.backup import ChainCheck, LedgerUnreadable, Target


class PgScratchServer:
    """Databases on the server of ``source`` (the live database, the owner's URL)."""

    def __init__(self, source_url: str, roles: Roles, settings: Settings,
                 keyring: KeyRing) -> None:
        self._source = target_from_url(source_url)
        self._roles = roles
        self._settings = settings
        self._keyring = keyring

    @property
    def source(self) -> Target:
        return self._source

    def target(self, url: str) -> Target:
        return target_from_url(url)

    def exists(self, target: Target) -> bool:
        return server.database_exists(target)

    def is_empty(self, target: Target) -> bool:
        return server.is_empty(target)

    def create(self, target: Target, *, replace: bool) -> None:
        server.create_database(target, replace=replace)

    def drop(self, target: Target) -> None:
        with suppress(psycopg.Error):  # a scratch copy: thrown away whatever happens
            server.drop_database(target)

    def ensure_roles(self, target: Target) -> None:
        server.ensure_roles(target, self._roles)

    def server_major(self, target: Target) -> int:
        return server.server_major(target)

    def hold(self, target: Target, reason: str) -> None:
        server.hold(target, self._roles, reason)

    def lift(self, target: Target) -> None:
        server.lift(target, self._roles)

    def read_stats(self, target: Target, methods: dict[str, str]
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        return server.read_stats(target, self._roles, methods)

    def read_ledger(self, target: Target) -> list[dict[str, Any]]:
        try:
            return server.read_ledger(target, self._roles)
        except psycopg.Error as exc:
            raise LedgerUnreadable(type(exc).__name__) from exc

    def insert_ledger(self, target: Target, entries: list[dict[str, Any]]) -> None:
        server.insert_ledger(target, self._roles, entries)

    def migrate(self, target: Target) -> None:
        migrate.upgrade(target.url(), self._roles, audit_key=self._keyring.active_audit_key)

    def verify_audit(self, target: Target) -> list[ChainCheck]:
        """Every audit chain of ``target``, with the live database's keys."""
        db = Database(self._settings, url=target.url())
        try:
            reports = verify_chains(db, SystemActors.BACKUP, self._keyring)
        finally:
            db.close()
        return [ChainCheck(r.clinic_id, r.sealed, r.broken_at, r.reason) for r in reports]

    def measure_wal_rpo(self, *, wait_s: float) -> tuple[float | None, str]:
        return server.measure_wal_rpo(self._source, wait_s=wait_s)
