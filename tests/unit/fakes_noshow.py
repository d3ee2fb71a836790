"""In memory: the clinic's appointments as the no-show model sees them (features seeded by
the test), stored models and recorded scores."""

from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from neonpro.domain.errors import Forbidden
from neonpro.domain.noshow import Features, Prediction, StoredModel
from neonpro.domain.vocabulary import NoShowModelKind
from tests.unit.fakes_base import utcnow

if TYPE_CHECKING:
    from tests.unit.fakes import FakeUnitOfWork


@dataclass(frozen=True)
class _Held:
    clinic_id: uuid.UUID
    value: Any


class FakeNoShow:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.history: dict[uuid.UUID, _Held] = uow.store.setdefault("no_show_history", {})
        self.models: dict[uuid.UUID, _Held] = uow.store.setdefault("no_show_models", {})
        self.scores: dict[uuid.UUID, _Held] = uow.store.setdefault("no_show_scores", {})
        self.aggregates: dict[uuid.UUID, _Held] = uow.store.setdefault("no_show_patients", {})

    @property
    def clinic_id(self) -> uuid.UUID:
        if self.uow.clinic_id is None:
            raise Forbidden("this operation needs a clinic: open a tenant unit of work")
        return self.uow.clinic_id

    def _mine(self, table: dict[uuid.UUID, _Held]) -> builtins.list[Any]:
        return [h.value for h in table.values() if h.clinic_id == self.clinic_id]

    def seed(self, *features: Features) -> None:
        """Appointments of the unit of work's clinic (``label`` None: still to come)."""
        for f in features:
            self.history[f.appointment_id] = _Held(self.clinic_id, f)

    def labelled(self, as_of: datetime) -> builtins.list[Features]:
        rows = [f for f in self._mine(self.history) if f.label is not None and f.start_time < as_of]
        return sorted(rows, key=lambda f: (f.start_time, f.appointment_id))

    def upcoming(self, as_of: datetime, until: datetime) -> builtins.list[Features]:
        rows = [f for f in self._mine(self.history)
                if f.label is None and as_of <= f.start_time < until]
        return sorted(rows, key=lambda f: (f.start_time, f.appointment_id))

    def latest_model(self) -> StoredModel | None:
        return max(self._mine(self.models), key=lambda m: m.version, default=None)

    def add_model(self, kind: NoShowModelKind, params: dict[str, Any], metrics: dict[str, Any],
                  *, rows: int, no_shows: int,
                  history: tuple[datetime | None, datetime | None]) -> StoredModel:
        latest = self.latest_model()
        model = StoredModel(uuid.uuid4(), (latest.version if latest else 0) + 1, kind, params,
                            metrics, utcnow(), rows)
        self.models[model.id] = _Held(self.clinic_id, model)
        return model

    def record_scores(self, model: StoredModel, predictions: builtins.list[Prediction],
                      at: datetime) -> None:
        for p in predictions:
            self.scores[p.appointment_id] = _Held(self.clinic_id, {
                "appointment_id": p.appointment_id, "patient_id": p.patient_id,
                "score": p.score, "model_version": model.label, "factors": p.factors,
                "predicted_at": at, "actual_outcome": None})

    def update_patient_aggregates(self, patient_ids: builtins.list[uuid.UUID],
                                  as_of: datetime) -> int:
        best: dict[uuid.UUID, int] = {}
        for row in self._mine(self.scores):
            f = self.history[row["appointment_id"]].value
            if f.patient_id in patient_ids and f.label is None and f.start_time >= as_of:
                best[f.patient_id] = max(best.get(f.patient_id, 0), row["score"])
        changed = 0
        for patient, score in best.items():
            held = self.aggregates.get(patient)
            if held is None or held.value != score:
                self.aggregates[patient] = _Held(self.clinic_id, score)
                changed += 1
        return changed

    def score_of(self, appointment_id: uuid.UUID) -> dict[str, Any] | None:
        held = self.scores.get(appointment_id)
        return dict(held.value) if held and held.clinic_id == self.clinic_id else None

    def high_risk(self, start: datetime, end: datetime, min_score: int,
                  limit: int) -> builtins.list[dict[str, Any]]:
        out = []
        for row in self._mine(self.scores):
            f = self.history[row["appointment_id"]].value
            if f.label is None and start <= f.start_time < end and row["score"] >= min_score:
                out.append({"appointment_id": f.appointment_id, "patient_id": f.patient_id,
                            "professional_id": uuid.UUID(int=0), "start_time": f.start_time,
                            "end_time": f.start_time, "status": "scheduled", "version": 1,
                            "patient_confirmed": f.confirmed, "score": row["score"],
                            "model_version": row["model_version"], "factors": row["factors"],
                            "predicted_at": row["predicted_at"]})
        out.sort(key=lambda r: (-r["score"], r["start_time"], r["appointment_id"]))
        return out[:limit]

    def recorded_outcomes(self) -> builtins.list[tuple[int, str]]:
        return [(r["score"], r["actual_outcome"]) for r in self._mine(self.scores)
                if r["actual_outcome"] in ("attended", "no_show")]

    def set_outcome(self, appointment_id: uuid.UUID, outcome: str) -> None:
        """As the outcome trigger does once the appointment is completed or missed."""
        held = self.scores[appointment_id]
        self.scores[appointment_id] = _Held(held.clinic_id,
                                            {**held.value, "actual_outcome": outcome})
