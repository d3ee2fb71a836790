"""Who acts: a staff member with a role, or a named system actor (CLI, jobs, migrations)."""

from __future__ import annotations

import ipaddress
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

    def __post_init__(self) -> None:
        # the audit trail stores addresses as inet: anything else ("testclient", a proxy's
        # garbage) is dropped rather than failing the caller's transaction
        if self.ip_address is not None:
            try:
                address = str(ipaddress.ip_address(self.ip_address.strip()))
            except ValueError:
                address = None
            object.__setattr__(self, "ip_address", address)
        if self.user_agent is not None:
            object.__setattr__(self, "user_agent", self.user_agent[:500])

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
