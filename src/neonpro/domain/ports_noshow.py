"""The no-show service's port: what it asks of the clinic's history, models and scores.

``adapters/db/repositories/noshow.py`` implements it in SQL (features computed by the
database); ``tests/unit`` in memory. Every method works in the unit of work's clinic.
"""

from __future__ import annotations

import builtins
import uuid
from datetime import datetime
from typing import Any, Protocol

from neonpro.domain.noshow import Features, Prediction, StoredModel
from neonpro.domain.vocabulary import NoShowModelKind


class NoShowRepository(Protocol):
    def labelled(self, as_of: datetime) -> builtins.list[Features]:
        """Every past appointment that was attended or missed, oldest first."""
        ...
    def upcoming(self, as_of: datetime, until: datetime) -> builtins.list[Features]:
        """Scheduled or confirmed appointments starting in ``[as_of, until)``."""
        ...
    def latest_model(self) -> StoredModel | None: ...
    def add_model(self, kind: NoShowModelKind, params: dict[str, Any], metrics: dict[str, Any],
                  *, rows: int, no_shows: int,
                  history: tuple[datetime | None, datetime | None]) -> StoredModel:
        """Store a model as the clinic's next version."""
        ...
    def record_scores(self, model: StoredModel, predictions: builtins.list[Prediction],
                      at: datetime) -> None: ...
    def update_patient_aggregates(self, patient_ids: builtins.list[uuid.UUID],
                                  as_of: datetime) -> int:
        """Each patient's highest upcoming score; the number of patients changed."""
        ...
    def score_of(self, appointment_id: uuid.UUID) -> dict[str, Any] | None: ...
    def high_risk(self, start: datetime, end: datetime, min_score: int,
                  limit: int) -> builtins.list[dict[str, Any]]:
        """Scored upcoming appointments in ``[start, end)`` at or above ``min_score``,
        riskiest first (the fields of ``services.noshow.HighRisk``)."""
        ...
    def recorded_outcomes(self) -> builtins.list[tuple[int, str]]:
        """(score, actual outcome) of every recorded prediction whose outcome is known."""
        ...
