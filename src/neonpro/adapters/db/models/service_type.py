"""The clinic's catalogue of bookable services."""

import uuid
from decimal import Decimal

from sqlalchemy import Boolean, Index, Integer, Numeric, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TenantMixin, TimestampMixin, table_args, uuid_pk
from neonpro.adapters.db.models._checks import TUSS, ck_non_negative, ck_positive, ck_regex


class ServiceType(TenantMixin, TimestampMixin, Base):
    """A bookable service: name, duration and price (BRL)."""

    __tablename__ = "service_types"
    __table_args__ = table_args(
        "tenant",
        Index(None, "clinic_id", "is_active"),
        ck_positive("duration_minutes"),
        ck_non_negative("price"),
        ck_regex("tuss_code", TUSS),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    duration_minutes: Mapped[int] = mapped_column(Integer)
    price: Mapped[Decimal] = mapped_column(
        Numeric(10, 2), default=Decimal("0.00"), server_default=text("0")
    )  # BRL
    category: Mapped[str | None] = mapped_column(Text)
    tuss_code: Mapped[str | None] = mapped_column(Text)  # default TUSS code for bookings
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
