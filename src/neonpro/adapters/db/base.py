"""Declarative base, naming convention and the column helpers every table uses.

Table scopes (kept in ``Table.info["scope"]``):

* ``tenant``: holds one clinic's data. ``clinic_id`` is the first column of the
  primary key and of every unique constraint, every foreign key to another
  tenant table includes it, and row-level security keys on it.
* ``clinic``: the ``clinics`` table itself; its ``id`` is the tenant key.
* ``global``: shared across clinics (staff accounts).

``tests/integration/test_schema_rules.py`` walks the metadata and enforces these rules.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

from sqlalchemy import DateTime, ForeignKey, MetaData, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

Scope = Literal["tenant", "clinic", "global"]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a stable constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        uuid.UUID: UUID(as_uuid=True),
        datetime: DateTime(timezone=True),
    }


def uuid_pk() -> Mapped[uuid.UUID]:
    """A UUID primary-key column, generated in Python (known before flush) and by the server."""
    return mapped_column(
        UUID(as_uuid=True),
        primary_key=True,
        default=uuid.uuid4,
        server_default=text("gen_random_uuid()"),
    )


class TenantMixin:
    """``clinic_id`` first in the primary key, referencing ``clinics``.

    Subclasses declare ``id = uuid_pk()`` themselves, so the primary key is
    ``(clinic_id, id)`` in that order.
    """

    @declared_attr
    @classmethod
    def clinic_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(
            UUID(as_uuid=True),
            ForeignKey("clinics.id", ondelete="RESTRICT"),
            primary_key=True,
            sort_order=-10,
        )


class TimestampMixin:
    """``created_at``/``updated_at`` maintained by the database (``updated_at`` by trigger)."""

    created_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), nullable=False, sort_order=900
    )
    updated_at: Mapped[datetime] = mapped_column(
        server_default=func.now(), nullable=False, sort_order=901
    )


def table_args(scope: Scope, *items: Any) -> tuple[Any, ...]:
    """``__table_args__`` for a model: its constraints and indexes plus the scope marker."""
    return (*items, {"info": {"scope": scope}})
