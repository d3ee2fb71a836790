"""The tenant itself."""

import uuid

from sqlalchemy import Boolean, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TimestampMixin, table_args, uuid_pk
from neonpro.adapters.db.models._checks import CNES, CNPJ, ck_regex
from neonpro.adapters.db.models._columns import pii
from neonpro.domain.vocabulary import AnonymizationRule as Anon
from neonpro.domain.vocabulary import DataCategory as Cat


class Clinic(TimestampMixin, Base):
    """A clinic: the tenant. Its ``id`` is the ``clinic_id`` of every tenant row."""

    __tablename__ = "clinics"
    __table_args__ = table_args(
        "clinic",
        UniqueConstraint("cnpj"),
        ck_regex("cnpj", CNPJ),  # check digits are verified in the domain layer
        ck_regex("cnes_code", CNES),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(Text)
    legal_name: Mapped[str | None] = mapped_column(Text)  # razão social
    cnpj: Mapped[str | None] = mapped_column(Text)  # 14 digits, no mask
    cnes_code: Mapped[str | None] = mapped_column(Text)  # national establishment registry
    timezone: Mapped[str] = mapped_column(
        Text, default="America/Sao_Paulo", server_default=text("'America/Sao_Paulo'")
    )
    # The LGPD "encarregado" (Art. 41): personal data of a staff member, published by law.
    dpo_name: Mapped[str | None] = mapped_column(
        Text, **pii(Cat.IDENTIFICATION, Anon.KEEP, "public by Art. 41 §1")
    )
    dpo_email: Mapped[str | None] = mapped_column(
        Text, **pii(Cat.CONTACT, Anon.KEEP, "public by Art. 41 §1")
    )
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
