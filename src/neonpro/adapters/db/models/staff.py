"""Staff accounts (global) and their memberships in clinics (tenant)."""

import uuid
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TenantMixin, TimestampMixin, table_args, uuid_pk
from neonpro.adapters.db.models._checks import ck_in
from neonpro.adapters.db.models._columns import pii
from neonpro.domain.vocabulary import AnonymizationRule as Anon
from neonpro.domain.vocabulary import ClinicRole
from neonpro.domain.vocabulary import DataCategory as Cat


class StaffUser(TimestampMixin, Base):
    """A login account; it may belong to several clinics through memberships."""

    __tablename__ = "staff_users"
    __table_args__ = table_args(
        "global",
        # citext is not available: case-insensitive uniqueness through an expression index.
        Index("uq_staff_users_lower_email", text("lower(email)"), unique=True),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    email: Mapped[str] = mapped_column(Text, **pii(Cat.CONTACT, Anon.REPLACE))
    display_name: Mapped[str] = mapped_column(Text, **pii(Cat.IDENTIFICATION, Anon.REPLACE))
    password_hash: Mapped[str] = mapped_column(Text, comment="argon2 hash; erase on anonymize")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    last_login_at: Mapped[datetime | None]


class ClinicMembership(TenantMixin, Base):
    """A staff user's role in one clinic. Primary key ``(clinic_id, user_id)``."""

    __tablename__ = "clinic_memberships"
    __table_args__ = table_args("tenant", ck_in("role", ClinicRole))

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("staff_users.id", ondelete="CASCADE"),
        primary_key=True,
    )
    role: Mapped[str] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now(), sort_order=900)
