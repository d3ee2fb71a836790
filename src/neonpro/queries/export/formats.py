"""The export's format names, media types and the FHIR JSON shape."""

from __future__ import annotations

from typing import Any

from neonpro.domain.vocabulary import ExportFormat

FORMAT = "neonpro.lgpd.export/v1"
FhirJson = dict[str, Any]  # a FHIR element as JSON-ready data
__all__ = ["FORMAT", "MEDIA_TYPES", "ExportFormat", "FhirJson"]

MEDIA_TYPES = {ExportFormat.JSON: "application/json", ExportFormat.FHIR: "application/fhir+json"}
