"""Health professionals who see patients (optionally linked to a staff account)."""

import uuid
from datetime import date, time

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    Text,
    Time,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TenantMixin, TimestampMixin, table_args, uuid_pk
from neonpro.adapters.db.models._checks import (
    HEX_COLOR,
    PHONE_BR,
    ck_in,
    ck_non_negative,
    ck_positive,
    ck_regex,
    ck_uf,
)
from neonpro.adapters.db.models._columns import pii
from neonpro.domain.vocabulary import AnonymizationRule as Anon
from neonpro.domain.vocabulary import CouncilType, CouncilValidation
from neonpro.domain.vocabulary import DataCategory as Cat


class Professional(TenantMixin, TimestampMixin, Base):
    """A professional with a council licence, calendar colour and default working hours.

    Working hours are the default weekly pattern in the clinic's timezone; buffer,
    hours, weekends, daily maximum and licence expiry are checked when booking.
    """

    __tablename__ = "professionals"
    __table_args__ = table_args(
        "tenant",
        UniqueConstraint(
            "clinic_id",
            "council_type",
            "council_state",
            "council_license",
            name="uq_professionals_clinic_id_council_registration",  # convention name > 63
        ),
        UniqueConstraint("clinic_id", "user_id"),  # one professional record per account
        # the account is a staff member of this clinic (not any clinic's account): the
        # membership's key is (clinic_id, user_id); a membership removed unlinks the account
        ForeignKeyConstraint(
            ["clinic_id", "user_id"],
            ["clinic_memberships.clinic_id", "clinic_memberships.user_id"],
            ondelete="SET NULL (user_id)",
        ),
        Index(None, "clinic_id", "is_active"),
        ck_in("council_type", CouncilType),
        ck_in("council_validation", CouncilValidation),
        ck_uf("council_state"),
        CheckConstraint(
            "council_license IS NULL OR council_type IS NOT NULL",
            name="council_license_needs_type",
        ),
        ck_regex("phone", PHONE_BR),
        ck_regex("color", HEX_COLOR),
        ck_positive("max_daily_appointments"),
        ck_non_negative("appointment_buffer_minutes"),
        CheckConstraint(
            "(work_start_time IS NULL) = (work_end_time IS NULL)", name="work_hours_pair"
        ),
        CheckConstraint("work_end_time > work_start_time", name="work_hours_order"),
        CheckConstraint("(break_start_time IS NULL) = (break_end_time IS NULL)", name="break_pair"),
        CheckConstraint(
            "break_start_time IS NULL OR (work_start_time IS NOT NULL"
            " AND break_start_time >= work_start_time AND break_end_time > break_start_time"
            " AND break_end_time <= work_end_time)",
            name="break_within_work_hours",
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    full_name: Mapped[str] = mapped_column(Text, **pii(Cat.IDENTIFICATION, Anon.REPLACE))
    specialization: Mapped[str | None] = mapped_column(Text)
    council_type: Mapped[str | None] = mapped_column(Text)
    council_license: Mapped[str | None] = mapped_column(
        Text, **pii(Cat.IDENTIFICATION, Anon.ERASE, "public register number")
    )
    council_state: Mapped[str | None] = mapped_column(Text)  # UF
    council_validation: Mapped[str] = mapped_column(
        Text, default=CouncilValidation.PENDING.value, server_default=text("'pending'")
    )
    license_expiry_date: Mapped[date | None]
    phone: Mapped[str | None] = mapped_column(Text, **pii(Cat.CONTACT, Anon.ERASE))
    email: Mapped[str | None] = mapped_column(Text, **pii(Cat.CONTACT, Anon.ERASE))
    color: Mapped[str] = mapped_column(Text, default="#3B82F6", server_default=text("'#3B82F6'"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    work_start_time: Mapped[time | None] = mapped_column(Time)
    work_end_time: Mapped[time | None] = mapped_column(Time)
    break_start_time: Mapped[time | None] = mapped_column(Time)
    break_end_time: Mapped[time | None] = mapped_column(Time)
    can_work_weekends: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    max_daily_appointments: Mapped[int] = mapped_column(
        Integer, default=20, server_default=text("20")
    )
    appointment_buffer_minutes: Mapped[int] = mapped_column(
        Integer, default=15, server_default=text("15")
    )
