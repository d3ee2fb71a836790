"""Pruning what durability keeps only for a while: commit tokens and idempotency keys.

Commit tokens are looked up within the deadline of the request that wrote them (seconds),
and are kept ten minutes; idempotency keys are kept until they expire (24 hours at least).
The API's background thread prunes both every minute; a database written only by the CLI
keeps a few tokens more, harmlessly, until an API or `neonpro db prune` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from neonpro.adapters.db.durability_sql import PRUNE_TOKENS
from neonpro.adapters.db.repositories.idempotency import PRUNE
from neonpro.domain.actors import Actor, SystemActors

if TYPE_CHECKING:
    from neonpro.adapters.db.database import Database

TOKEN_MINUTES = 10
EVERY_S = 60.0


@dataclass(frozen=True)
class Pruned:
    commit_tokens: int
    idempotency_keys: int


def prune_expired(db: Database, actor: Actor = SystemActors.SCHEDULER) -> Pruned:
    """Delete commit tokens older than ten minutes and expired idempotency keys."""
    with db.service_session(actor.id, actor.role) as session:
        tokens = session.execute(PRUNE_TOKENS, {"minutes": TOKEN_MINUTES}).rowcount
        keys = session.execute(PRUNE).rowcount
    return Pruned(tokens, keys)
