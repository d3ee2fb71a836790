"""No-show risk: the features of an appointment, the stored models, scores and their reasons.

Pure Python: the features come from SQL (``repositories/noshow.py``), the fitting from
scikit-learn (``services/noshow.py``). A stored model is plain numbers (``params``), so
scoring needs neither the library nor unpickling anything from the database:

* ``logistic``: standardised features, coefficients and intercept of a logistic
  regression. The contribution of a feature to one appointment's risk is its coefficient
  times its standardised value (how far it is from the clinic's average appointment, in
  log-odds); the top positive contributions are the reasons shown to the front desk.
* ``prior``: for a clinic with too little history, the patient's past no-show rate
  shrunk towards the clinic's rate (a Beta prior of ``strength`` appointments), the
  clinic's rate itself shrunk towards :data:`GLOBAL_RATE`. The evaluation compares the
  logistic model with this same prior as its baseline.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from neonpro.domain.vocabulary import AppointmentType, NoShowModelKind

GLOBAL_RATE: Final = 0.15  # a typical outpatient no-show rate, until the clinic has its own
GLOBAL_STRENGTH: Final = 20.0  # the clinic's rate counts as this many appointments
PATIENT_STRENGTH: Final = 3.0  # the patient's own history shrinks towards the clinic's rate
TOP_FACTORS: Final = 3
WEEKDAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                   "sunday")
HOURS: Final = (("before_9", 0, 9), ("9_to_12", 9, 12), ("12_to_17", 12, 17),
                ("from_17", 17, 24))
TYPES: Final = tuple(t.value for t in AppointmentType)
MAX_COUNT: Final = 10
MAX_RESCHEDULES: Final = 5


@dataclass(frozen=True, slots=True)
class Features:
    """One appointment as the model sees it (computed in SQL from the clinic's history)."""

    appointment_id: uuid.UUID
    patient_id: uuid.UUID
    start_time: datetime
    past_visits: int  # attended or missed before this appointment
    past_no_shows: int
    lead_days: float  # booking to appointment
    weekday: int  # ISO: 1 Monday .. 7 Sunday, in the clinic's time zone
    hour: int  # local hour of the start
    appointment_type: str
    reminders_sent: int
    confirmed: bool
    reschedules: int
    days_since_last_visit: float | None  # None: never attended
    label: int | None = None  # 1 no-show, 0 attended, None not yet known

    @property
    def first_visit(self) -> bool:
        return self.days_since_last_visit is None


def _hour_bucket(hour: int) -> str:
    return next(name for name, low, high in HOURS if low <= hour < high)


FEATURE_NAMES: Final[tuple[str, ...]] = (
    "past_no_shows", "prior_log_odds", "log_lead_days",
    *(f"weekday_{d}" for d in WEEKDAYS), *(f"hour_{h[0]}" for h in HOURS),
    *(f"type_{t}" for t in TYPES),
    "reminders_sent", "confirmed", "reschedules", "log_days_since_last_visit", "first_visit",
)


def group_of(feature: str) -> str:
    """The factor a feature belongs to (one-hot columns share one)."""
    for prefix, group in (("weekday_", "weekday"), ("hour_", "hour"),
                          ("type_", "appointment_type")):
        if feature.startswith(prefix):
            return group
    return {"log_lead_days": "lead_days", "prior_log_odds": "past_no_show_rate",
            "log_days_since_last_visit": "days_since_last_visit"}.get(feature, feature)


def encode(f: Features, base_rate: float) -> list[float]:
    """The numeric vector of ``f`` in :data:`FEATURE_NAMES` order. The patient's history
    enters as the log-odds of the prior fallback (their smoothed past no-show rate), so a
    patient with one visit is not read as 0 % or 100 %."""
    hour = _hour_bucket(f.hour)
    return [
        float(min(f.past_no_shows, MAX_COUNT)), logit(prior_probability(f, base_rate)),
        math.log1p(max(f.lead_days, 0.0)),
        *(float(f.weekday == i + 1) for i in range(len(WEEKDAYS))),
        *(float(hour == h[0]) for h in HOURS),
        *(float(f.appointment_type == t) for t in TYPES),
        float(min(f.reminders_sent, MAX_COUNT)), float(f.confirmed),
        float(min(f.reschedules, MAX_RESCHEDULES)),
        math.log1p(f.days_since_last_visit) if f.days_since_last_visit is not None else 0.0,
        float(f.first_visit),
    ]


def display_value(f: Features, factor: str) -> Any:
    """What the front desk reads next to a factor (a count, a day, a flag)."""
    values: dict[str, Any] = {
        "past_no_shows": f.past_no_shows,
        "past_no_show_rate": round(f.past_no_shows / f.past_visits, 2) if f.past_visits
        else None,
        "lead_days": round(f.lead_days), "weekday": WEEKDAYS[f.weekday - 1],
        "hour": f.hour, "appointment_type": f.appointment_type,
        "reminders_sent": f.reminders_sent, "confirmed": f.confirmed,
        "reschedules": f.reschedules,
        "days_since_last_visit": None if f.days_since_last_visit is None
        else round(f.days_since_last_visit),
        "first_visit": f.first_visit,
    }
    return values[factor]


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def clinic_rate(no_shows: int, labelled: int) -> float:
    """The clinic's no-show rate shrunk towards :data:`GLOBAL_RATE`."""
    return (no_shows + GLOBAL_STRENGTH * GLOBAL_RATE) / (labelled + GLOBAL_STRENGTH)


@dataclass(frozen=True, slots=True)
class Prediction:
    appointment_id: uuid.UUID
    patient_id: uuid.UUID
    probability: float
    factors: list[dict[str, Any]]

    @property
    def score(self) -> int:
        return max(0, min(100, round(self.probability * 100)))


@dataclass(frozen=True, slots=True)
class StoredModel:
    """A model as kept in ``no_show_models``: enough to score, nothing executable."""

    id: uuid.UUID
    version: int
    kind: NoShowModelKind
    params: dict[str, Any]
    metrics: dict[str, Any]
    trained_at: datetime | None = None
    training_rows: int = 0

    @property
    def label(self) -> str:
        return f"v{self.version}-{self.kind.value}"

    @property
    def base_rate(self) -> float:
        return float(self.params["base_rate"])

    def predict(self, f: Features) -> Prediction:
        if self.kind is NoShowModelKind.PRIOR:
            return prior_prediction(f, self.base_rate)
        return linear_prediction(f, self.params)


def prior_probability(f: Features, base_rate: float) -> float:
    return (f.past_no_shows + PATIENT_STRENGTH * base_rate) / (f.past_visits + PATIENT_STRENGTH)


def prior_prediction(f: Features, base_rate: float) -> Prediction:
    p = prior_probability(f, base_rate)
    factors = []
    if f.past_no_shows:
        factors.append({"factor": "past_no_shows", "value": f.past_no_shows,
                        "weight": round(logit(p) - logit(base_rate), 3)})
    return Prediction(f.appointment_id, f.patient_id, p, factors)


def linear_contributions(f: Features, params: dict[str, Any]) -> tuple[float, dict[str, float]]:
    """(log-odds, contribution per factor) of a stored logistic model."""
    x = encode(f, float(params["base_rate"]))
    if list(params["features"]) != list(FEATURE_NAMES):
        raise ValueError("the stored model was trained on other features: retrain it")
    z = float(params["intercept"])
    by_factor: dict[str, float] = {}
    for name, value, mean, scale, coef in zip(FEATURE_NAMES, x, params["mean"], params["scale"],
                                              params["coef"], strict=True):
        part = float(coef) * (value - float(mean)) / float(scale)
        z += part
        group = group_of(name)
        by_factor[group] = by_factor.get(group, 0.0) + part
    return z, by_factor


def linear_prediction(f: Features, params: dict[str, Any]) -> Prediction:
    z, by_factor = linear_contributions(f, params)
    top = sorted(((w, k) for k, w in by_factor.items() if w > 0), reverse=True)[:TOP_FACTORS]
    factors = [{"factor": k, "value": display_value(f, k), "weight": round(w, 3)}
               for w, k in top]
    return Prediction(f.appointment_id, f.patient_id, sigmoid(z), factors)


# --- evaluation --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decile:
    decile: int  # 1 lowest predicted risk .. 10 highest
    count: int
    mean_predicted: float
    no_show_rate: float


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A time-based hold-out: trained before ``cutoff``, tested from it on."""

    cutoff: datetime
    train_rows: int
    test_rows: int
    test_no_shows: int
    auc: float
    brier: float
    baseline_auc: float
    baseline_brier: float
    deciles: list[Decile]

    def auc_line(self) -> str:
        return f"AUC model={self.auc:.2f} baseline={self.baseline_auc:.2f}"

    def to_json(self) -> dict[str, Any]:
        return {
            "cutoff": self.cutoff.isoformat(), "train_rows": self.train_rows,
            "test_rows": self.test_rows, "test_no_shows": self.test_no_shows,
            "auc": round(self.auc, 4), "brier": round(self.brier, 4),
            "baseline_auc": round(self.baseline_auc, 4),
            "baseline_brier": round(self.baseline_brier, 4),
            "deciles": [{"decile": d.decile, "count": d.count,
                         "mean_predicted": round(d.mean_predicted, 4),
                         "no_show_rate": round(d.no_show_rate, 4)} for d in self.deciles],
        }


def deciles(probabilities: Sequence[float], labels: Sequence[int]) -> list[Decile]:
    """Appointments ranked by predicted risk, cut into ten groups of (nearly) equal size."""
    ranked = sorted(zip(probabilities, labels, strict=True), key=lambda pair: pair[0])
    n = len(ranked)
    out = []
    for i in range(10):
        part = ranked[i * n // 10:(i + 1) * n // 10]
        if part:
            out.append(Decile(i + 1, len(part), sum(p for p, _ in part) / len(part),
                              sum(y for _, y in part) / len(part)))
    return out
