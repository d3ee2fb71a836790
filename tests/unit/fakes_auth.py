"""In memory: staff accounts, sign-in throttling (a per-key attempt count and block), the
sessions of issued tokens, and ending a membership; plus reversible "password hashes"."""

from __future__ import annotations

import builtins
import hashlib
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neonpro.domain.errors import Forbidden
from neonpro.domain.ports_auth import LoginRecord
from neonpro.domain.schemas.clinic import MembershipRead
from neonpro.domain.signin import ThrottleKeys, ThrottleLimits
from neonpro.domain.vocabulary import ClinicRole

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork


class FakePasswords:
    """Not a hash: enough to tell a right password from a wrong one, and to count checks."""

    def __init__(self) -> None:
        self.checks = 0

    def hash(self, password: str) -> str:
        return f"hashed:{password}"

    def verify(self, stored_hash: str | None, password: str) -> bool:
        self.checks += 1
        return stored_hash is not None and stored_hash == self.hash(password)


def _key(scope: str, value: str) -> bytes:
    return hashlib.sha256(f"{scope}\x00{value}".encode()).digest()


class FakeLogins:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.accounts: dict[uuid.UUID, dict[str, Any]] = uow.store.setdefault("accounts", {})
        self.throttle: dict[bytes, dict[str, Any]] = uow.store.setdefault("throttle", {})
        self.sessions: dict[str, dict[str, Any]] = uow.store.setdefault("sessions", {})

    def seed(self, email: str, password_hash: str, *, is_active: bool = True,
             memberships: dict[uuid.UUID, ClinicRole] | None = None) -> uuid.UUID:
        """An account and its active memberships."""
        user_id = uuid.uuid4()
        self.accounts[user_id] = {"email": email, "password_hash": password_hash,
                                  "is_active": is_active, "last_login_at": None}
        members = self.uow.store.setdefault("memberships", {})
        for clinic, role in (memberships or {}).items():
            members[(clinic, user_id)] = MembershipRead.model_construct(
                clinic_id=clinic, user_id=user_id, role=role, is_active=True)
        return user_id

    def keys(self, address: str | None, email: str) -> ThrottleKeys:
        mail = email.strip().lower()
        return ThrottleKeys(address=_key("address", address) if address else None,
                            account=_key("account", mail),
                            pair=_key("pair", f"{address or ''}\x00{mail}"))

    def find_login(self, email: str) -> LoginRecord | None:
        mail = email.strip().lower()
        for user_id, row in self.accounts.items():
            if row["email"].lower() == mail:
                members = {m.clinic_id: ClinicRole(m.role)
                           for m in self.uow.store.get("memberships", {}).values()
                           if m.user_id == user_id and m.is_active}
                return LoginRecord(user_id, row["password_hash"], row["is_active"], members)
        return None

    def email_of(self, user_id: uuid.UUID) -> str | None:
        row = self.accounts.get(user_id)
        return None if row is None else str(row["email"])

    def set_password(self, user_id: uuid.UUID, password_hash: str) -> None:
        self.accounts[user_id] = {**self.accounts[user_id], "password_hash": password_hash}

    def claim_attempt(self, keys: ThrottleKeys, limits: ThrottleLimits,
                      now: datetime) -> datetime | None:
        """The pair's attempts only: one over the limit blocks it for ``first_block``."""
        row = self.throttle.get(keys.pair, {"failures": 0, "blocked_until": None})
        if row["blocked_until"] is not None and row["blocked_until"] > now:
            return row["blocked_until"]  # type: ignore[no-any-return]
        failures, blocked = row["failures"] + 1, None
        if failures > limits.pair:
            failures, blocked = 0, now + limits.first_block
        self.throttle[keys.pair] = {"failures": failures, "blocked_until": blocked}
        return blocked

    def attempt_succeeded(self, keys: ThrottleKeys, now: datetime,
                          limits: ThrottleLimits) -> None:
        self.throttle[keys.pair] = {"failures": 0, "blocked_until": None}

    def login_succeeded(self, user_id: uuid.UUID, now: datetime) -> None:
        self.accounts[user_id] = {**self.accounts[user_id], "last_login_at": now}

    def open_session(self, token_id: str, user_id: uuid.UUID, clinic_id: uuid.UUID,
                     role: ClinicRole, kind: str, expires_at: datetime) -> None:
        self.sessions[token_id] = {"user_id": user_id, "clinic_id": clinic_id, "role": role,
                                   "kind": kind, "expires_at": expires_at, "revoked": None}

    def revoke_sessions(self, reason: str, *, token_id: str | None = None,
                        user_id: uuid.UUID | None = None,
                        clinic_id: uuid.UUID | None = None) -> int:
        if token_id is None and user_id is None and clinic_id is None:
            msg = "revoke_sessions needs a token, a user or a clinic"
            raise ValueError(msg)
        ended = 0
        for tid, row in builtins.list(self.sessions.items()):
            if row["revoked"] is None and token_id in (None, tid) and user_id in (
                    None, row["user_id"]) and clinic_id in (None, row["clinic_id"]):
                self.sessions[tid] = {**row, "revoked": reason}
                ended += 1
        return ended

    def deactivate_membership(self, user_id: uuid.UUID) -> None:
        if not self.uow.service:
            raise Forbidden("removing a member needs the service role")
        members = self.uow.store.setdefault("memberships", {})
        key = (self.uow.clinic_id, user_id)
        if key in members:
            members[key] = members[key].model_copy(update={"is_active": False})
