"""No-show risk for the front desk: tomorrow's high-risk appointments, the model in use.

Each appointment's own score and factors come with every appointment read
(``no_show_risk_score``, ``no_show_model_version``, ``no_show_risk_factors``,
``no_show_predicted_at``); scores are written by ``neonpro noshow score``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from neonpro.domain.errors import NotFound
from neonpro.domain.schemas._types import Day
from neonpro.entrypoints.api.deps import STAFF, Caller, caller_with
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import noshow as svc

router = APIRouter(route_class=OneHopRoute, prefix="/noshow", tags=["no-show risk"])


class RiskFactor(BaseModel):
    factor: str
    value: Any
    weight: float


class HighRiskAppointment(BaseModel):
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
    factors: list[RiskFactor]
    predicted_at: datetime


class ModelInfo(BaseModel):
    model_version: str
    kind: str
    trained_at: datetime | None
    training_rows: int
    metrics: dict[str, Any]


@router.get("/high-risk", response_model=list[HighRiskAppointment])
def high_risk(
    caller: Annotated[Caller, Depends(caller_with(STAFF))],
    day: Day | None = None,
    min_score: Annotated[int, Query(ge=0, le=100)] = svc.HIGH_RISK_SCORE,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[HighRiskAppointment]:
    """Scheduled or confirmed appointments of ``day`` (default: tomorrow in the clinic's time
    zone) scored at or above ``min_score``, riskiest first, with the reasons."""
    rows = svc.high_risk_on(caller.uow(), day, min_score=min_score, limit=limit)
    return [HighRiskAppointment.model_validate(r, from_attributes=True) for r in rows]


@router.get("/model", response_model=ModelInfo)
def current_model(caller: Annotated[Caller, Depends(caller_with(STAFF))]) -> ModelInfo:
    """The clinic's model in use: version, kind and the metrics of its training."""
    model = svc.current_model(caller.uow())
    if model is None:
        raise NotFound("no-show model")
    return ModelInfo(model_version=model.label, kind=model.kind.value,
                     trained_at=model.trained_at, training_rows=model.training_rows,
                     metrics=model.metrics)
