"""What every backup use case shares: the container's roles, key and database, the audit
event each one records, and step timings."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from neonpro.adapters.backup.pgtools import Target
from neonpro.adapters.backup.stream import parse_key
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.vocabulary import AuditAction, AuditResource, AuditStatus, RiskLevel

T = TypeVar("T")


def roles_of(container: Container) -> Roles:
    return container.database.roles


def key_of(container: Container) -> bytes | None:
    secret = container.settings.backup_key
    return None if secret is None else parse_key(secret.get_secret_value())


def source_of(container: Container) -> Target:
    return Target.from_url(container.database.owner_url)


def scratch(container: Container, label: str) -> Target:
    """A new database name on the live server, for a restore that is thrown away."""
    return source_of(container).with_database(f"neonpro_{label}_{uuid.uuid4().hex[:12]}")


def record_event(container: Container, action: AuditAction, resource_id: str,
                 details: dict[str, Any], *, ok: bool = True,
                 actor: Actor = SystemActors.BACKUP) -> None:
    """Record a backup event in ``container``'s database, and seal it."""
    uow = container.service_uow(actor)
    with uow:
        uow.audit.record(action, AuditResource.BACKUP, resource_id, risk=RiskLevel.HIGH,
                         status=AuditStatus.SUCCESS if ok else AuditStatus.FAILURE,
                         details=details)
        uow.commit()
    container.seal_audit(actor)


@dataclass
class Timings:
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
