"""Who acts: a staff member with a role, or a named system actor (CLI, jobs, migrations)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    """The acting identity of one unit of work; recorded on every change and audit event."""

    id: uuid.UUID
    role: str
    ip_address: str | None = None
    request_id: str | None = None
    user_agent: str | None = None
    session_id: str | None = None

    @property
    def is_system(self) -> bool:
        return self.role == "system"


def _system(n: int) -> Actor:
    return Actor(uuid.UUID(int=0x5E5_0000_0000 + n), "system")


class SystemActors:
    """Named system actors with fixed ids, so their work is attributable in the audit trail."""

    CLI = _system(1)
    DEMO_SEED = _system(2)
    SCHEDULER = _system(3)
    MIGRATIONS = _system(4)
    BACKUP = _system(5)
    HEALTH = _system(6)
