"""Sign-in in SQL (service role): accounts' password hashes, throttling, sessions.

Throttling counts *attempts*, claimed before the password is checked and in their own short
transaction: a burst of parallel guesses cannot slip past the limit, and no row lock is
held while argon2 runs. A success gives its attempt back (the pair's and the account's
counters restart; the address's loses the one attempt), so a clinic behind one public
address is not throttled by its own staff signing in every morning.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from neonpro.adapters.db.models import ClinicMembership, StaffUser
from neonpro.adapters.db.models.signin import LoginThrottle, StaffSession, TrustedSignIn
from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.errors import Forbidden
from neonpro.domain.ports_auth import LoginRecord
from neonpro.domain.signin import ThrottleKeys, ThrottleLimits
from neonpro.domain.vocabulary import ClinicRole

USERS = cast(Table, StaffUser.__table__)
MEMBERS = cast(Table, ClinicMembership.__table__)
THROTTLE = cast(Table, LoginThrottle.__table__)
TRUSTED = cast(Table, TrustedSignIn.__table__)
SESSIONS = cast(Table, StaffSession.__table__)


class SqlStaffLoginRepository(SqlRepository):
    """Service role: password hashes, throttling, sessions and memberships' end (the app
    role sees none)."""

    __slots__ = ()

    def keys(self, address: str | None, email: str) -> ThrottleKeys:
        """The throttling keys of a sign-in (blind-index HMACs, never the values)."""
        blind = self._uow.blind
        mail = email.strip().lower()
        return ThrottleKeys(
            address=blind.index("signin-address", address) if address else None,
            account=blind.index("signin-account", mail),
            pair=blind.index("signin-pair", f"{address or ''}\x00{mail}"),
        )

    def find_login(self, email: str) -> LoginRecord | None:
        row = self._execute(select(
            USERS.c.id, USERS.c.password_hash, USERS.c.is_active,
        ).where(func.lower(USERS.c.email) == email.strip().lower())).first()
        if row is None:
            return None
        members = self._execute(select(MEMBERS.c.clinic_id, MEMBERS.c.role).where(
            MEMBERS.c.user_id == row.id, MEMBERS.c.is_active.is_(True))).all()
        return LoginRecord(row.id, row.password_hash, row.is_active,
                           {m.clinic_id: ClinicRole(m.role) for m in members})

    def email_of(self, user_id: uuid.UUID) -> str | None:
        return self._execute(select(USERS.c.email).where(USERS.c.id == user_id)).scalar()

    def set_password(self, user_id: uuid.UUID, password_hash: str) -> None:
        self._execute(update(USERS).where(USERS.c.id == user_id).values(
            password_hash=password_hash))

    # ------------------------------------------------------------------ throttling
    def _trusted(self, keys: ThrottleKeys, limits: ThrottleLimits, now: datetime) -> bool:
        return self._execute(select(TRUSTED.c.pair).where(
            TRUSTED.c.pair == keys.pair,
            TRUSTED.c.last_success_at > now - limits.trust_for)).first() is not None

    def claim_attempt(self, keys: ThrottleKeys, limits: ThrottleLimits,
                      now: datetime) -> datetime | None:
        """Count one attempt against each scope that applies; the time until which the
        attempt must wait (it is not counted then), or None to go ahead.

        A pair that signed in successfully within ``trust_for`` is held back by its own
        counter only: strangers throttling the address or the account do not lock it out.
        """
        trusted = self._trusted(keys, limits, now)
        scopes = [("pair", keys.pair)]
        if not trusted:
            scopes.append(("account", keys.account))
            if keys.address is not None:
                scopes.append(("address", keys.address))
        scopes.sort()  # one lock order for every sign-in: no deadlock between two of them
        self._execute(insert(THROTTLE).values(
            [{"scope": s, "key": k, "window_started_at": now} for s, k in scopes]
        ).on_conflict_do_nothing())
        rows = self._execute(select(THROTTLE).where(
            tuple_(THROTTLE.c.scope, THROTTLE.c.key).in_(scopes),
        ).order_by(THROTTLE.c.scope, THROTTLE.c.key).with_for_update()).all()
        waiting = [r.blocked_until for r in rows
                   if r.blocked_until is not None and r.blocked_until > now]
        if waiting:
            return cast(datetime, max(waiting))
        refused: list[datetime] = []
        for row in rows:
            strikes = row.strikes
            if row.window_started_at <= now - limits.longest_block and (
                    row.blocked_until is None or row.blocked_until <= now - limits.longest_block):
                strikes = 0  # a day without a block: the backoff starts over
            fresh = row.window_started_at <= now - limits.window
            failures = 1 if fresh else row.failures + 1
            window = now if fresh else row.window_started_at
            blocked = None
            if failures > limits.of(row.scope):
                blocked = now + min(limits.first_block * (2 ** min(strikes, 20)),
                                    limits.longest_block)
                strikes, failures, window = strikes + 1, 0, now
                refused.append(blocked)
            self._execute(update(THROTTLE).where(
                THROTTLE.c.scope == row.scope, THROTTLE.c.key == row.key,
            ).values(failures=failures, strikes=strikes, window_started_at=window,
                     blocked_until=blocked, updated_at=now))
        return max(refused) if refused else None

    def attempt_succeeded(self, keys: ThrottleKeys, now: datetime,
                          limits: ThrottleLimits) -> None:
        """The attempt was right: the pair starts over and is trusted from now on; the
        account and the address get back the attempt counted on them, and a block of either
        stands (a user signing in at the clinic must not lift what strangers elsewhere
        earned). A trusted pair's attempt was not counted there (:meth:`claim_attempt`), so
        it gives nothing back: else anyone with an account of their own could sign in
        between guesses at others' accounts and keep the address's count at zero."""
        counted_shared = not self._trusted(keys, limits, now)
        self._execute(update(THROTTLE).where(
            THROTTLE.c.scope == "pair", THROTTLE.c.key == keys.pair,
        ).values(failures=0, strikes=0, blocked_until=None, updated_at=now))
        shared = [("account", keys.account)]
        if keys.address is not None:
            shared.append(("address", keys.address))
        if counted_shared:
            self._execute(update(THROTTLE).where(
                tuple_(THROTTLE.c.scope, THROTTLE.c.key).in_(shared),
            ).values(failures=func.greatest(THROTTLE.c.failures - 1, 0), updated_at=now))
        stmt = insert(TRUSTED).values(pair=keys.pair, last_success_at=now)
        self._execute(stmt.on_conflict_do_update(
            index_elements=[TRUSTED.c.pair], set_={"last_success_at": now}))

    def login_succeeded(self, user_id: uuid.UUID, now: datetime) -> None:
        self._execute(update(USERS).where(USERS.c.id == user_id).values(last_login_at=now))

    # ------------------------------------------------------------------ sessions
    def open_session(self, token_id: str, user_id: uuid.UUID, clinic_id: uuid.UUID,
                     role: ClinicRole, kind: str, expires_at: datetime) -> None:
        self._execute(insert(SESSIONS).values(
            token_id=token_id, user_id=user_id, clinic_id=clinic_id, role=role.value,
            kind=kind, expires_at=expires_at))

    def revoke_sessions(self, reason: str, *, token_id: str | None = None,
                        user_id: uuid.UUID | None = None,
                        clinic_id: uuid.UUID | None = None) -> int:
        """Revoke the live sessions matching every criterion given (at least one)."""
        conditions: list[ColumnElement[bool]] = [SESSIONS.c.revoked_at.is_(None)]
        if token_id is not None:
            conditions.append(SESSIONS.c.token_id == token_id)
        if user_id is not None:
            conditions.append(SESSIONS.c.user_id == user_id)
        if clinic_id is not None:
            conditions.append(SESSIONS.c.clinic_id == clinic_id)
        if len(conditions) == 1:
            msg = "revoke_sessions needs a token, a user or a clinic"
            raise ValueError(msg)
        return int(self._execute(update(SESSIONS).where(*conditions).values(
            revoked_at=func.now(), revoked_reason=reason)).rowcount)

    # ------------------------------------------------------------------ memberships
    def deactivate_membership(self, user_id: uuid.UUID) -> None:
        """End ``user_id``'s membership of this clinic (kept, inactive: the audit trail
        names it). Service role, scoped to the unit of work's clinic."""
        if not self._uow.service:
            raise Forbidden("removing a member needs the service role")
        self._execute(update(MEMBERS).where(
            MEMBERS.c.clinic_id == self.clinic_id, MEMBERS.c.user_id == user_id,
        ).values(is_active=False))
