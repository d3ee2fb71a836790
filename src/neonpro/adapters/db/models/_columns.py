"""Column and key builders shared by the table modules.

* ``pii(category, rule)``: keyword arguments for ``mapped_column`` on a column
  that holds personal data: a database ``COMMENT`` (readable by a DPO in
  ``\\d+``) and the same facts in ``Column.info["lgpd"]``, so the anonymizer and
  the portability export can walk the metadata instead of keeping lists.
* ``actor_column()``: who did something. Plain uuid with no foreign key: the
  actor may be a named system actor (CLI, scheduler) that is no staff user, and
  attribution must survive the removal of an account.
* ``tenant_fk(column, table)``: the composite ``(clinic_id, x_id)`` foreign key
  between tenant tables; a nullable reference uses ``SET NULL (x_id)`` so that
  ``clinic_id`` is never nulled, a required one ``RESTRICT``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

if TYPE_CHECKING:
    import uuid

    from neonpro.domain.vocabulary import AnonymizationRule, DataCategory

ACTOR_COMMENT = "actor: staff user id or named system actor; no FK on purpose"


def pii(category: DataCategory, rule: AnonymizationRule, note: str = "") -> dict[str, Any]:
    """``comment=`` and ``info=`` for a column that holds personal data."""
    comment = f"LGPD {category.value}; anonymize: {rule.value}"
    if note:
        comment = f"{comment}; {note}"
    return {
        "comment": comment,
        "info": {"lgpd": {"category": category, "anonymize": rule}},
    }


def actor_column() -> Mapped[uuid.UUID | None]:
    """An optional uuid naming the actor (see the module docstring: deliberately no FK)."""
    return mapped_column(UUID(as_uuid=True), nullable=True, comment=ACTOR_COMMENT)


def required_actor_column() -> Mapped[uuid.UUID]:
    """A required uuid naming the actor (deliberately no FK)."""
    return mapped_column(UUID(as_uuid=True), nullable=False, comment=ACTOR_COMMENT)


def tenant_fk(column_name: str, target_table: str, *, nullable: bool) -> ForeignKeyConstraint:
    """``(clinic_id, column) -> target(clinic_id, id)``, SET NULL (column) or RESTRICT."""
    ondelete = f"SET NULL ({column_name})" if nullable else "RESTRICT"
    return ForeignKeyConstraint(
        ["clinic_id", column_name],
        [f"{target_table}.clinic_id", f"{target_table}.id"],
        ondelete=ondelete,
    )


class Chained:
    """An entry of a per-clinic chain (``adapters/db/audit.py``): inserted unsealed, then
    given its ``seq``, the previous entry's hash and its own keyed hash by the sealer."""

    seq: Mapped[int | None] = mapped_column(BigInteger, comment="NULL until sealed")
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(Text, comment="the audit key of the hash")


def chain_args(table: str, *order: str) -> tuple[Any, ...]:
    """The constraints of a chained table: one entry per seq, and the unsealed index."""
    return (
        UniqueConstraint("clinic_id", "seq"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        Index(f"ix_{table}_unsealed", "clinic_id", *order, "id",
              postgresql_where=text("seq IS NULL")),
    )
