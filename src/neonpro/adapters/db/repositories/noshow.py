"""No-show data in SQL: features from the clinic's history, stored models, recorded scores.

Every query runs in the unit of work's clinic (row-level security, and ``clinic_id`` named
explicitly so the indexes serve it). Features are computed by the database, one row per
appointment, from the patient's earlier appointments (``LATERAL`` on the
``(clinic_id, patient_id, start_time)`` index): nothing loads a clinic's history into
Python. Scores are written beside the appointments (``appointment_risk_scores``), never
into them, so an appointment's ``version`` does not move.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text

from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.noshow import Features, Prediction, StoredModel
from neonpro.domain.vocabulary import NoShowModelKind

# history strictly before the appointment and before now: for a past appointment, what
# was known when it started; for an upcoming one, everything known today
FEATURES_SQL = """
SELECT a.id AS appointment_id, a.patient_id, a.start_time,
       coalesce(h.past_visits, 0) AS past_visits, coalesce(h.past_no_shows, 0) AS past_no_shows,
       greatest(extract(epoch FROM a.start_time - a.created_at) / 86400.0, 0)::float8
         AS lead_days,
       extract(isodow FROM a.start_time AT TIME ZONE c.timezone)::int AS weekday,
       extract(hour FROM a.start_time AT TIME ZONE c.timezone)::int AS hour,
       a.appointment_type, a.reminder_count AS reminders_sent,
       a.patient_confirmed AS confirmed, a.reschedule_count AS reschedules,
       (extract(epoch FROM a.start_time - h.last_visit) / 86400.0)::float8
         AS days_since_last_visit,
       CASE a.status WHEN 'no_show' THEN 1 WHEN 'completed' THEN 0 END AS label
FROM appointments a
JOIN clinics c ON c.id = a.clinic_id
CROSS JOIN LATERAL (  -- an aggregate: always one row (no ON true: Citus refuses it on PG 15)
  SELECT count(*) AS past_visits,
         count(*) FILTER (WHERE p.status = 'no_show') AS past_no_shows,
         max(p.start_time) FILTER (WHERE p.status = 'completed') AS last_visit
  FROM appointments p
  WHERE p.clinic_id = :clinic AND p.patient_id = a.patient_id  -- :clinic: one shard on Citus
    AND p.start_time < least(a.start_time, :as_of)
    AND p.status IN ('completed', 'no_show')
) h
WHERE a.clinic_id = :clinic AND {where}
ORDER BY a.start_time, a.id
"""
LABELLED = text(FEATURES_SQL.replace(
    "{where}", "a.status IN ('completed', 'no_show') AND a.start_time < :as_of"))
COMING = text(FEATURES_SQL.replace(
    "{where}", "a.status IN ('scheduled', 'confirmed') AND a.start_time >= :as_of "
    "AND a.start_time < :until"))

UPSERT_SCORE = text("""
INSERT INTO appointment_risk_scores AS s (clinic_id, appointment_id, score, model_id,
                                          model_version, factors, predicted_at)
VALUES (:clinic, :appointment, :score, :model, :label, CAST(:factors AS jsonb), :at)
ON CONFLICT (clinic_id, appointment_id) DO UPDATE
   SET score = EXCLUDED.score, model_id = EXCLUDED.model_id,
       model_version = EXCLUDED.model_version, factors = EXCLUDED.factors,
       predicted_at = EXCLUDED.predicted_at, actual_outcome = NULL, outcome_at = NULL
""")

# the patient's aggregate: the highest score among their upcoming scored appointments;
# a system-managed value, so no version bump (staff edits never conflict with it)
PATIENT_AGGREGATE = text("""
UPDATE patients p SET no_show_risk_score = agg.score
FROM (SELECT a.patient_id, max(s.score) AS score
      FROM appointment_risk_scores s
      JOIN appointments a ON a.clinic_id = s.clinic_id AND a.id = s.appointment_id
      WHERE s.clinic_id = :clinic AND a.status IN ('scheduled', 'confirmed')
        AND a.start_time >= :as_of AND a.patient_id = ANY(:patients)
      GROUP BY a.patient_id) agg
WHERE p.clinic_id = :clinic AND p.id = agg.patient_id
  AND p.no_show_risk_score IS DISTINCT FROM agg.score
""")

LATEST_MODEL = text("""
SELECT id, version, kind, params, metrics, trained_at, training_rows FROM no_show_models
WHERE clinic_id = :clinic ORDER BY version DESC LIMIT 1
""")

INSERT_MODEL = text("""
INSERT INTO no_show_models (clinic_id, id, version, kind, trained_by, training_rows,
                            training_no_shows, history_from, history_to, params, metrics)
SELECT :clinic, :id, coalesce(max(version), 0) + 1, :kind, :actor, :rows, :no_shows,
       :history_from, :history_to, CAST(:params AS jsonb), CAST(:metrics AS jsonb)
FROM no_show_models WHERE clinic_id = :clinic
RETURNING version, trained_at
""")

SCORE_OF = text("""
SELECT s.appointment_id, s.score, s.model_version, s.factors, s.predicted_at,
       s.actual_outcome
FROM appointment_risk_scores s WHERE s.clinic_id = :clinic AND s.appointment_id = :id
""")

HIGH_RISK = text("""
SELECT a.id AS appointment_id, a.patient_id, a.professional_id, a.start_time, a.end_time,
       a.status, a.version, a.patient_confirmed, s.score, s.model_version, s.factors,
       s.predicted_at
FROM appointments a
JOIN appointment_risk_scores s ON s.clinic_id = a.clinic_id AND s.appointment_id = a.id
WHERE a.clinic_id = :clinic AND a.status IN ('scheduled', 'confirmed')
  AND a.start_time >= :start AND a.start_time < :end AND s.score >= :min_score
ORDER BY s.score DESC, a.start_time, a.id
LIMIT :limit
""")

RECORDED = text("""
SELECT s.score, s.actual_outcome FROM appointment_risk_scores s
JOIN appointments a ON a.clinic_id = s.clinic_id AND a.id = s.appointment_id
WHERE s.clinic_id = :clinic AND s.actual_outcome IN ('attended', 'no_show')
""")


class SqlNoShowRepository(SqlRepository):
    __slots__ = ()

    def _features(self, query: TextClause, params: dict[str, Any]) -> list[Features]:
        rows = self._execute(query, {"clinic": self.clinic_id, **params}).mappings()
        return [Features(**row) for row in rows]

    def labelled(self, as_of: datetime) -> list[Features]:
        """Every past appointment that was attended or missed, oldest first, with features."""
        return self._features(LABELLED, {"as_of": as_of})

    def upcoming(self, as_of: datetime, until: datetime) -> list[Features]:
        """Scheduled or confirmed appointments starting in ``[as_of, until)``."""
        return self._features(COMING, {"as_of": as_of, "until": until})

    def latest_model(self) -> StoredModel | None:
        row = self._execute(LATEST_MODEL, {"clinic": self.clinic_id}).mappings().first()
        if row is None:
            return None
        return StoredModel(row["id"], row["version"], NoShowModelKind(row["kind"]),
                           row["params"], row["metrics"], row["trained_at"],
                           row["training_rows"])

    def add_model(self, kind: NoShowModelKind, params: dict[str, Any], metrics: dict[str, Any],
                  *, rows: int, no_shows: int,
                  history: tuple[datetime | None, datetime | None]) -> StoredModel:
        """Store a model as the next version of this clinic's (two trainings at once: the
        unique ``(clinic_id, version)`` index refuses the second with a conflict)."""
        model_id = uuid.uuid4()
        row = self._execute(INSERT_MODEL, {
            "clinic": self.clinic_id, "id": model_id, "kind": kind.value,
            "actor": self._uow.actor.id, "rows": rows, "no_shows": no_shows,
            "history_from": history[0], "history_to": history[1],
            "params": json.dumps(params), "metrics": json.dumps(metrics),
        }).one()
        return StoredModel(model_id, row.version, kind, params, metrics, row.trained_at, rows)

    def record_scores(self, model: StoredModel, predictions: list[Prediction],
                      at: datetime) -> None:
        """Upsert each appointment's score, model version, factors and time of prediction."""
        if not predictions:
            return
        self._execute(UPSERT_SCORE, [
            {"clinic": self.clinic_id, "appointment": p.appointment_id, "score": p.score,
             "model": model.id, "label": model.label, "factors": json.dumps(p.factors),
             "at": at}
            for p in predictions
        ])

    def update_patient_aggregates(self, patient_ids: list[uuid.UUID], as_of: datetime) -> int:
        if not patient_ids:
            return 0
        result = self._execute(PATIENT_AGGREGATE, {"clinic": self.clinic_id, "as_of": as_of,
                                                   "patients": patient_ids})
        return int(result.rowcount)

    def score_of(self, appointment_id: uuid.UUID) -> dict[str, Any] | None:
        row = self._execute(SCORE_OF, {"clinic": self.clinic_id,
                                       "id": appointment_id}).mappings().first()
        return dict(row) if row is not None else None

    def high_risk(self, start: datetime, end: datetime, min_score: int,
                  limit: int) -> list[dict[str, Any]]:
        rows = self._execute(HIGH_RISK, {"clinic": self.clinic_id, "start": start, "end": end,
                                         "min_score": min_score, "limit": limit}).mappings()
        return [dict(r) for r in rows]

    def recorded_outcomes(self) -> list[tuple[int, str]]:
        """(score, actual outcome) of every recorded prediction whose outcome is known."""
        rows = self._execute(RECORDED, {"clinic": self.clinic_id})
        return [(int(r.score), str(r.actual_outcome)) for r in rows]
