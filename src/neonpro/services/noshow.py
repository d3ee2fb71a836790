"""No-show risk use cases: train a clinic's model, evaluate it, score what is coming, list
the front desk's high-risk appointments. Each runs in one tenant unit of work.

The model is a scikit-learn L1-regularised logistic regression on standardised features
(:mod:`neonpro.domain.noshow`); what is stored is its numbers, and scoring uses them
directly (a test checks they give scikit-learn's own probabilities). A clinic with too
little history (fewer than :data:`MIN_ROWS` attended or missed appointments, or fewer than
:data:`MIN_EACH_CLASS` of either) gets the prior-based fallback instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Final
from zoneinfo import ZoneInfo

from neonpro.domain.errors import Conflict, ValidationFailed
from neonpro.domain.noshow import (
    FEATURE_NAMES,
    PATIENT_STRENGTH,
    Evaluation,
    Features,
    StoredModel,
    clinic_rate,
    deciles,
    encode,
    linear_prediction,
    prior_probability,
)
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.ports_noshow import NoShowRepository
from neonpro.domain.vocabulary import AuditAction, AuditResource, NoShowModelKind

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# scikit-learn and numpy are imported where a model is trained or evaluated: every CLI
# command and the API would otherwise pay their 1.4 s import at start

MIN_ROWS: Final = 200
MIN_EACH_CLASS: Final = 20
DAYS_PER_MONTH: Final = 30.44
DEFAULT_HOLDOUT_MONTHS: Final = 3
DEFAULT_HORIZON_DAYS: Final = 14
HIGH_RISK_SCORE: Final = 30


class NotEnoughHistory(Conflict):
    """The clinic's history cannot support what was asked (too few rows, one class only)."""

    code = "not_enough_history"


@dataclass(frozen=True, slots=True)
class TrainResult:
    model: StoredModel
    rows: int
    no_shows: int
    evaluation: Evaluation | None


@dataclass(frozen=True, slots=True)
class ScoreResult:
    model: StoredModel
    scored: int
    patients_updated: int


def _labels(rows: Sequence[Features]) -> list[int]:
    return [int(r.label or 0) for r in rows]


def enough_for_a_model(rows: Sequence[Features]) -> bool:
    no_shows = sum(_labels(rows))
    return len(rows) >= MIN_ROWS and min(no_shows, len(rows) - no_shows) >= MIN_EACH_CLASS


def fit_pipeline(rows: Sequence[Features], base_rate: float) -> Pipeline:
    """Standardise, then an L1-regularised logistic regression (unhelpful features drop to
    zero: a clinic's history is small and most weekday or hour columns are noise)."""
    import numpy as np  # noqa: PLC0415  (see the imports)
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.pipeline import make_pipeline  # noqa: PLC0415
    from sklearn.preprocessing import StandardScaler  # noqa: PLC0415

    x = np.array([encode(r, base_rate) for r in rows], dtype=float)
    y = np.array(_labels(rows), dtype=int)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(
        C=0.1, l1_ratio=1.0, solver="liblinear", max_iter=5000))
    pipeline.fit(x, y)
    return pipeline


def params_of(pipeline: Pipeline, base_rate: float) -> dict[str, Any]:
    """The fitted numbers: what ``no_show_models.params`` keeps and scoring uses."""
    scaler, regression = pipeline[0], pipeline[1]
    return {
        "features": list(FEATURE_NAMES),
        "mean": [float(v) for v in scaler.mean_],
        "scale": [float(v) for v in scaler.scale_],
        "coef": [float(v) for v in regression.coef_[0]],
        "intercept": float(regression.intercept_[0]),
        "base_rate": base_rate,
    }


def fit_logistic(rows: Sequence[Features], base_rate: float) -> dict[str, Any]:
    return params_of(fit_pipeline(rows, base_rate), base_rate)


_MORE_HISTORY = ("evaluate once the clinic has more history (at least {rows} attended or "
                 "missed appointments, {each} of each outcome, before the hold-out)")


def _split(ordered: Sequence[Features], holdout_months: int) -> tuple[
        list[Features], list[Features], datetime]:
    cutoff = ordered[-1].start_time - timedelta(days=round(DAYS_PER_MONTH * holdout_months))
    return ([r for r in ordered if r.start_time < cutoff],
            [r for r in ordered if r.start_time >= cutoff], cutoff)


def _advice(ordered: Sequence[Features], holdout_months: int) -> str:
    """What to run instead: the longest shorter hold-out that the history supports, if
    any; else, to wait for more history."""
    for months in range(holdout_months - 1, 0, -1):
        train, test, _cutoff = _split(ordered, months)
        if enough_for_a_model(train) and len(set(_labels(test))) == 2:  # noqa: PLR2004
            return f"evaluate with a {months}-month hold-out (--holdout-months {months})"
    return _MORE_HISTORY.format(rows=MIN_ROWS, each=MIN_EACH_CLASS)


def fallback_reason(rows: int, no_shows: int) -> str:
    """Why a clinic gets the prior-only model instead of a fitted one."""
    return (f"{rows} attended or missed appointments ({no_shows} no-shows): a fitted model "
            f"needs {MIN_ROWS} with at least {MIN_EACH_CLASS} of each outcome")


def evaluate_rows(rows: Sequence[Features],
                  holdout_months: int = DEFAULT_HOLDOUT_MONTHS) -> Evaluation:
    """Train on appointments before the last ``holdout_months`` months, test on those months;
    the baseline is the prior-only fallback fitted on the same training part."""
    if not rows:
        raise NotEnoughHistory(
            "no attended or missed appointments to evaluate on: "
            f"{_MORE_HISTORY.format(rows=MIN_ROWS, each=MIN_EACH_CLASS)}")
    ordered = sorted(rows, key=lambda r: r.start_time)
    train, test, cutoff = _split(ordered, holdout_months)
    if not enough_for_a_model(train):
        raise NotEnoughHistory(
            f"the history before the {holdout_months}-month hold-out has {len(train)} "
            f"attended or missed appointments ({sum(_labels(train))} no-shows); a model "
            f"needs {MIN_ROWS} with at least {MIN_EACH_CLASS} of each outcome: "
            f"{_advice(ordered, holdout_months)}")
    y = _labels(test)
    if len(set(y)) < 2:  # noqa: PLR2004
        raise NotEnoughHistory("the hold-out months hold only one outcome, so AUC is "
                               f"undefined: {_advice(ordered, holdout_months)}")
    from sklearn.metrics import brier_score_loss, roc_auc_score  # noqa: PLC0415

    base_rate = clinic_rate(sum(_labels(train)), len(train))
    params = fit_logistic(train, base_rate)
    model_p = [linear_prediction(r, params).probability for r in test]
    baseline_p = [prior_probability(r, base_rate) for r in test]
    return Evaluation(
        cutoff=cutoff, train_rows=len(train), test_rows=len(test), test_no_shows=sum(y),
        auc=float(roc_auc_score(y, model_p)), brier=float(brier_score_loss(y, model_p)),
        baseline_auc=float(roc_auc_score(y, baseline_p)),
        baseline_brier=float(brier_score_loss(y, baseline_p)),
        deciles=deciles(model_p, y),
    )


def _fit_and_store(repo: NoShowRepository, rows: list[Features],
                   holdout_months: int) -> TrainResult:
    no_shows = sum(_labels(rows))
    base_rate = clinic_rate(no_shows, len(rows))
    metrics: dict[str, Any] = {"base_rate": round(base_rate, 4),
                               "library": f"scikit-learn {version('scikit-learn')}"}
    evaluation = None
    if enough_for_a_model(rows):
        kind = NoShowModelKind.LOGISTIC
        try:
            evaluation = evaluate_rows(rows, holdout_months)
            metrics["holdout"] = evaluation.to_json()
        except NotEnoughHistory as exc:
            metrics["holdout"] = {"skipped": exc.message}
        params = fit_logistic(rows, base_rate)
    else:
        kind = NoShowModelKind.PRIOR
        params = {"base_rate": base_rate, "strength": PATIENT_STRENGTH}
        metrics["reason"] = fallback_reason(len(rows), no_shows)
    history = (rows[0].start_time, rows[-1].start_time) if rows else (None, None)
    model = repo.add_model(kind, params, metrics, rows=len(rows), no_shows=no_shows,
                           history=history)
    return TrainResult(model, len(rows), no_shows, evaluation)


def train_model(uow: UnitOfWork, *, holdout_months: int = DEFAULT_HOLDOUT_MONTHS,
                now: datetime | None = None) -> TrainResult:
    """Fit the clinic's model on its whole history (metrics from a time-based hold-out) and
    store it as the next version; the prior fallback when the history is too small."""
    with uow:
        repo = uow.no_show
        result = _fit_and_store(repo, repo.labelled(now or datetime.now(UTC)), holdout_months)
        uow.audit.record(AuditAction.CREATE, AuditResource.NO_SHOW_MODEL, result.model.id, details={
            "version": result.model.version, "kind": result.model.kind.value,
            "rows": result.rows})
        uow.commit()
    return result


def evaluate_model(uow: UnitOfWork, *, holdout_months: int = DEFAULT_HOLDOUT_MONTHS,
                   now: datetime | None = None) -> Evaluation:
    """A time-based hold-out evaluation of the clinic's history (nothing is stored)."""
    with uow:
        rows = uow.no_show.labelled(now or datetime.now(UTC))
        uow.audit.record(AuditAction.VIEW, AuditResource.APPOINTMENT, details={
            "purpose": "no_show_evaluation", "returned": len(rows)})
        uow.commit()
    return evaluate_rows(rows, holdout_months)


def current_model(uow: UnitOfWork) -> StoredModel | None:
    """The clinic's model in use (its highest version), or None before any training."""
    with uow:
        model = uow.no_show.latest_model()
        uow.commit()
    return model


def recorded_performance(uow: UnitOfWork) -> dict[str, Any]:
    """How recorded scores fared against the outcomes filled in since (live performance)."""
    with uow:
        pairs = uow.no_show.recorded_outcomes()
        uow.commit()
    y = [int(outcome == "no_show") for _, outcome in pairs]
    p = [score / 100 for score, _ in pairs]
    out: dict[str, Any] = {"predictions_with_outcome": len(pairs), "no_shows": sum(y)}
    if len(set(y)) == 2:  # noqa: PLR2004
        from sklearn.metrics import brier_score_loss, roc_auc_score  # noqa: PLC0415

        out["auc"] = round(float(roc_auc_score(y, p)), 4)
        out["brier"] = round(float(brier_score_loss(y, p)), 4)
    return out


def score_upcoming(uow: UnitOfWork, *, days: int = DEFAULT_HORIZON_DAYS,
                   now: datetime | None = None) -> ScoreResult:
    """Score every scheduled or confirmed appointment of the next ``days`` days with the
    clinic's latest model (trained first if it has none), and update the patients'
    aggregate scores. Appointment rows are not touched: their versions stay."""
    now = now or datetime.now(UTC)
    with uow:
        repo = uow.no_show
        model = repo.latest_model()
        if model is None:
            model = _fit_and_store(repo, repo.labelled(now), DEFAULT_HOLDOUT_MONTHS).model
        if list(model.params.get("features", FEATURE_NAMES)) != list(FEATURE_NAMES):
            raise Conflict(f"model {model.label} was trained on other features: run "
                           "neonpro noshow train")
        coming = repo.upcoming(now, now + timedelta(days=days))
        predictions = [model.predict(f) for f in coming]
        repo.record_scores(model, predictions, now)
        updated = repo.update_patient_aggregates(sorted({f.patient_id for f in coming}), now)
        uow.audit.record(AuditAction.UPDATE, AuditResource.APPOINTMENT_RISK_SCORES, details={
            "scored": len(predictions), "model": model.label})
        uow.commit()
    return ScoreResult(model, len(predictions), updated)


@dataclass(frozen=True, slots=True)
class HighRisk:
    appointment_id: uuid.UUID
    patient_id: uuid.UUID
    professional_id: uuid.UUID
    start_time: datetime
    end_time: datetime
    status: str
    version: int
    patient_confirmed: bool
    score: int
    model_version: str
    factors: list[dict[str, Any]]
    predicted_at: datetime


def high_risk_on(uow: UnitOfWork, day: date | None = None, *,
                 min_score: int = HIGH_RISK_SCORE, limit: int = 200) -> list[HighRisk]:
    """A day's (default: tomorrow's, in the clinic's time zone) scored appointments at or
    above ``min_score``, riskiest first: the front desk's call list. Audited as a read."""
    if day is not None and not date(1900, 1, 1) <= day <= date(9999, 12, 30):
        raise ValidationFailed("day", "must be a calendar day between 1900 and 9999")
    with uow:
        zone = ZoneInfo(uow.appointments.clinic_time_zone())
        day = day or (datetime.now(zone).date() + timedelta(days=1))
        start = datetime.combine(day, time.min, tzinfo=zone)
        rows = uow.no_show.high_risk(start, start + timedelta(days=1), min_score,
                                                  limit)
        uow.audit.record(AuditAction.VIEW, AuditResource.APPOINTMENT, details={
            "purpose": "no_show_high_risk", "returned": len(rows)})
        uow.commit()
    return [HighRisk(**r) for r in rows]
