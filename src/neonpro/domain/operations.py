"""What operating the database reports: migration revisions, schema drift, housekeeping.

Plain data, made by the database adapters (``adapters/db/migrate.py``, ``schema_check.py``,
``housekeeping.py``) and read by the ``neonpro db`` commands and the health endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from neonpro.domain.errors import OperationFailed


@dataclass(frozen=True)
class Revisions:
    current: tuple[str, ...]
    head: str | None

    @property
    def at_head(self) -> bool:
        return self.head is not None and self.current == (self.head,)


@dataclass
class DriftReport:
    only_in_migrations: list[str] = field(default_factory=list)
    only_in_models: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.only_in_migrations or self.only_in_models)

    def lines(self) -> list[str]:
        return [f"- migrations only: {x}" for x in self.only_in_migrations] + [
            f"+ models only:     {x}" for x in self.only_in_models
        ]


@dataclass
class LiveReport:
    """Differences between the live database and what the migrations build."""

    migrated: bool = True
    revision: tuple[str, ...] = ()
    differences: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.differences


@dataclass(frozen=True)
class Pruned:
    commit_tokens: int
    idempotency_keys: int
    sign_in: int = 0
    feed_outbox: int = 0  # on Citus only (revision 0020)


@dataclass(frozen=True)
class Distributed:
    """What ``neonpro db distribute`` did on a Citus coordinator."""

    tables: int  # tables distributed or made reference tables by this run
    workers: int


class CannotDistribute(OperationFailed):
    """The database cannot be distributed as it is (the message says why)."""
