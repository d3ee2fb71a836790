"""No-show prediction: the clinic's trained models and the scores of its appointments.

Scores live beside the appointments, not in them: writing a score never touches the
appointment row, so its ``version`` (optimistic locking), ``updated_at`` and audit trail
stay what staff made them, and a scoring run never conflicts with an edit at the desk.

* ``no_show_models``: one row per trained model of a clinic, never changed (a retrain
  is a new ``version``): its kind (``logistic`` or the ``prior`` fallback), the
  parameters needed to score (plain numbers, no pickled code), and its metrics.
* ``appointment_risk_scores``: the latest score (0-100) of an appointment with the model
  version, the top contributing factors and the time of prediction; the actual outcome
  is filled in by a trigger when the appointment is completed, missed or cancelled.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, Integer, SmallInteger, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from neonpro.adapters.db.base import Base, TenantMixin, table_args, uuid_pk
from neonpro.adapters.db.models._checks import ck_in, ck_non_negative, ck_positive, ck_range
from neonpro.adapters.db.models._columns import actor_column, tenant_fk
from neonpro.domain.vocabulary import NoShowModelKind, NoShowOutcome


class NoShowModel(TenantMixin, Base):
    """A trained no-show model of one clinic (immutable; the highest version is in use)."""

    __tablename__ = "no_show_models"
    __table_args__ = table_args(
        "tenant",
        Index(None, "clinic_id", "version", unique=True),
        ck_in("kind", NoShowModelKind),
        ck_positive("version"),
        ck_non_negative("training_rows"),
        ck_non_negative("training_no_shows"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text, comment="logistic or prior (too little history)")
    trained_at: Mapped[datetime] = mapped_column(server_default=func.now())
    trained_by: Mapped[uuid.UUID | None] = actor_column()
    training_rows: Mapped[int] = mapped_column(Integer)
    training_no_shows: Mapped[int] = mapped_column(Integer)
    history_from: Mapped[datetime | None]
    history_to: Mapped[datetime | None]
    params: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"),
        comment="feature names, scaling, coefficients: numbers only, no personal data")
    metrics: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb"),
        comment="hold-out AUC, Brier score and the prior-only baseline")


class AppointmentRiskScore(TenantMixin, Base):
    """The latest no-show score of one appointment, and what actually happened."""

    __tablename__ = "appointment_risk_scores"
    __table_args__ = table_args(
        "tenant",
        # a deleted booking takes its score with it
        ForeignKeyConstraint(["clinic_id", "appointment_id"],
                             ["appointments.clinic_id", "appointments.id"], ondelete="CASCADE"),
        tenant_fk("model_id", "no_show_models", nullable=False),
        Index(None, "clinic_id", "score"),
        Index(None, "clinic_id", "model_id"),
        ck_range("score", 0, 100),
        ck_in("actual_outcome", NoShowOutcome),
    )

    appointment_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    score: Mapped[int] = mapped_column(SmallInteger)
    model_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    model_version: Mapped[str] = mapped_column(Text)
    factors: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb"),
        comment="top contributing factors: feature names, values and weights")
    predicted_at: Mapped[datetime] = mapped_column(server_default=func.now())
    actual_outcome: Mapped[str | None] = mapped_column(Text, comment="set by trigger")
    outcome_at: Mapped[datetime | None]
