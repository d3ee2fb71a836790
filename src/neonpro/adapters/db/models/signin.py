"""Sign-in throttling and API sessions (service role only; docs/security.md).

* ``login_throttle``: failed sign-ins counted per address, per e-mail and per pair of both,
  each keyed by an HMAC (the blind-index key), never by the address or the e-mail itself.
  Keyed by the e-mail *as typed*, so an e-mail nobody has is throttled exactly like one
  somebody has: the answer never tells whether an account exists.
* ``login_trusted``: a pair (address, e-mail) that signed in successfully: its account is
  not held back by throttling of the address or of the account alone (a stranger guessing
  from elsewhere cannot keep a user out), only by its own pair's.
* ``staff_sessions``: one row per token issued. Every transaction a token opens is checked
  against it (``neonpro_bind_context``): signing out, a password change, a membership
  removed or changed take effect on the next request.
"""

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, LargeBinary, Text, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, table_args
from neonpro.adapters.db.models._checks import ck_in, ck_non_negative
from neonpro.domain.vocabulary import ClinicRole

THROTTLE_SCOPES = ("address", "account", "pair")
SESSION_KINDS = ("login", "development")


class LoginThrottle(Base):
    """Failed sign-ins of one address, one e-mail or one pair, and the backoff they earned."""

    __tablename__ = "login_throttle"
    __table_args__ = table_args(
        "global",
        CheckConstraint("scope IN ('address', 'account', 'pair')", name="scope"),
        ck_non_negative("failures"),
        ck_non_negative("strikes"),
        Index(None, "updated_at"),
    )

    scope: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[bytes] = mapped_column(
        LargeBinary, primary_key=True,
        comment="HMAC-SHA256 (blind-index key) of the address, the e-mail or both; "
                "never the value")
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"),
                                          comment="attempts counted in the current window")
    strikes: Mapped[int] = mapped_column(Integer, server_default=text("0"),
                                         comment="blocks so far: each doubles the next one")
    window_started_at: Mapped[datetime] = mapped_column(server_default=func.now())
    blocked_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TrustedSignIn(Base):
    """A pair (address, e-mail) that signed in successfully, and when it last did."""

    __tablename__ = "login_trusted"
    __table_args__ = table_args("global", Index(None, "last_success_at"))

    pair: Mapped[bytes] = mapped_column(
        LargeBinary, primary_key=True,
        comment="HMAC-SHA256 (blind-index key) of the address and the e-mail")
    last_success_at: Mapped[datetime] = mapped_column(server_default=func.now())


class StaffSession(Base):
    """A token issued: by a sign-in, or (outside production) by ``neonpro token``."""

    __tablename__ = "staff_sessions"
    __table_args__ = table_args(
        "global",
        ck_in("role", ClinicRole),
        CheckConstraint("kind IN ('login', 'development')", name="kind"),
        Index(None, "user_id"),
        Index(None, "expires_at"),
    )

    token_id: Mapped[str] = mapped_column(Text, primary_key=True, comment="the token's jti")
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        comment="staff user (a development token may name none); no FK on purpose")
    clinic_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), comment="checked when the token is issued; no FK on purpose")
    role: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(
        Text, comment="logout, password_changed, membership_removed, ...")
