"""The sign-in service's ports: password hashing, issued tokens, and the service role's
sign-in repository (accounts, throttling, sessions, memberships' end).

``adapters/auth.py`` implements :class:`Passwords` (argon2) and mints :class:`IssuedToken`;
``adapters/db/repositories/signin.py`` implements :class:`StaffLoginRepository`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from neonpro.domain.signin import ThrottleKeys, ThrottleLimits
from neonpro.domain.vocabulary import ClinicRole


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as issued, with the claims its session row keeps."""

    token: str
    token_id: str
    user_id: uuid.UUID
    clinic_id: uuid.UUID
    role: ClinicRole
    expires_at: datetime


Mint = Callable[[uuid.UUID, uuid.UUID, ClinicRole], IssuedToken]
"""``mint(user_id, clinic_id, role)``: a signed token for that membership."""


@dataclass(frozen=True)
class LoginRecord:
    """What sign-in needs of an account: its hash, whether active, its active memberships."""

    user_id: uuid.UUID
    password_hash: str
    is_active: bool
    memberships: dict[uuid.UUID, ClinicRole]


class Passwords(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; the same work without an account (``None``)."""
        ...


class StaffLoginRepository(Protocol):
    """Service role: password hashes, throttling, sessions (the app role sees none)."""

    def keys(self, address: str | None, email: str) -> ThrottleKeys:
        """The throttling keys of a sign-in (keyed hashes, never the values)."""
        ...
    def find_login(self, email: str) -> LoginRecord | None: ...
    def email_of(self, user_id: uuid.UUID) -> str | None: ...
    def set_password(self, user_id: uuid.UUID, password_hash: str) -> None: ...
    def claim_attempt(self, keys: ThrottleKeys, limits: ThrottleLimits,
                      now: datetime) -> datetime | None:
        """Count one attempt; the time until which it must wait, or None to go ahead."""
        ...
    def attempt_succeeded(self, keys: ThrottleKeys, now: datetime,
                          limits: ThrottleLimits) -> None:
        """The attempt was right: the pair starts over and is trusted; the account and the
        address get back the attempt :meth:`claim_attempt` counted on them (none for a pair
        it trusted)."""
        ...
    def login_succeeded(self, user_id: uuid.UUID, now: datetime) -> None: ...
    def open_session(self, token_id: str, user_id: uuid.UUID, clinic_id: uuid.UUID,
                     role: ClinicRole, kind: str, expires_at: datetime) -> None: ...
    def revoke_sessions(self, reason: str, *, token_id: str | None = None,
                        user_id: uuid.UUID | None = None,
                        clinic_id: uuid.UUID | None = None) -> int:
        """Revoke the live sessions matching every criterion given (at least one)."""
        ...
    def deactivate_membership(self, user_id: uuid.UUID) -> None:
        """End ``user_id``'s membership of the unit of work's clinic (kept, inactive)."""
        ...
