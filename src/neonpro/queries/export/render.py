"""An export in the format asked for."""

from __future__ import annotations

import uuid
from datetime import datetime

from neonpro.domain.schemas.export import PatientData
from neonpro.queries.export.collect import to_json
from neonpro.queries.export.fhir import to_fhir
from neonpro.queries.export.formats import ExportFormat


def render(data: PatientData, fmt: ExportFormat, generated_at: datetime,
           request_id: uuid.UUID | None = None) -> bytes:
    if fmt is ExportFormat.FHIR:
        return to_fhir(data, generated_at)
    return to_json(data, generated_at, request_id)
