"""Pruning what is kept only for a while: commit tokens, idempotency keys, and sign-in's
sessions and throttling counters.

Commit tokens are looked up within the deadline of the request that wrote them (seconds),
and are kept ten minutes; idempotency keys are kept until they expire (24 hours at least);
sessions a day past their expiry, throttling counters a day after their last attempt (never
while they block), trusted sign-in pairs ``login_trust_days`` after their last success.
On Citus, feed events the relay never took (no subscriber anywhere) are kept five minutes,
the replay window. The API's background thread prunes them all every minute; a database
written only by the CLI keeps a few tokens more, harmlessly, until an API or
`neonpro db prune` runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

from neonpro.adapters.db.durability_sql import PRUNE_TOKENS
from neonpro.adapters.db.repositories.idempotency import PRUNE
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.operations import Pruned

if TYPE_CHECKING:
    from neonpro.adapters.db.database import Database

TOKEN_MINUTES = 10
PRUNE_SIGN_IN = (
    text("DELETE FROM staff_sessions WHERE expires_at < now() - interval '1 day'"),
    text("DELETE FROM login_throttle WHERE updated_at < now() - interval '1 day' "
         "AND (blocked_until IS NULL OR blocked_until < now())"),
    text("DELETE FROM login_trusted WHERE last_success_at < now() - make_interval(days => :d)"),
)
EVERY_S = 60.0
# on Citus, the feed's outbox (revision 0020): what no relay took within the replay window
# (no API process had a subscriber) would only grow; a client older than it resynchronises
OUTBOX_MINUTES = 5
PRUNE_OUTBOX = text(
    "DELETE FROM neonpro_feed_outbox WHERE at < now() - make_interval(mins => :m)")
HAS_OUTBOX = text("SELECT to_regclass('neonpro_feed_outbox') IS NOT NULL")


def prune_expired(db: Database, actor: Actor = SystemActors.SCHEDULER) -> Pruned:
    """Delete commit tokens older than ten minutes, expired idempotency keys, and sign-in
    rows past their use."""
    days = {"d": db.settings.login_trust_days}
    with db.transaction("service", None, actor.id, actor.role) as session:
        tokens = session.execute(PRUNE_TOKENS, {"minutes": TOKEN_MINUTES}).rowcount
        keys = session.execute(PRUNE).rowcount
        sign_in = sum(session.execute(statement, days).rowcount for statement in PRUNE_SIGN_IN)
        outbox = session.execute(PRUNE_OUTBOX, {"m": OUTBOX_MINUTES}).rowcount \
            if session.execute(HAS_OUTBOX).scalar() else 0
        session.commit()
    return Pruned(tokens, keys, sign_in, outbox)
