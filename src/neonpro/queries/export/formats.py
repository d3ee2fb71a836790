"""The export's format names, media types and the FHIR JSON shape."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

FORMAT = "neonpro.lgpd.export/v1"


class ExportFormat(StrEnum):
    JSON = "json"
    FHIR = "fhir"


FhirJson = dict[str, Any]  # a FHIR element as JSON-ready data
MEDIA_TYPES = {ExportFormat.JSON: "application/json", ExportFormat.FHIR: "application/fhir+json"}
