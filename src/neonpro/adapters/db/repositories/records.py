"""What is held about a patient, as a port (``domain.ports.PatientRecords``) on a unit of
work: ``queries.export``'s reads, on the unit of work's connection."""

from __future__ import annotations

import uuid

from neonpro.adapters.db.repositories._base import SqlRepository
from neonpro.domain.schemas.export import Holdings, PatientData
from neonpro.domain.schemas.patient import PatientRead


class SqlPatientRecords(SqlRepository):
    """``uow.records``: the LGPD confirmation's summary and the export's full read."""

    __slots__ = ()

    def holdings(self, patient: PatientRead) -> Holdings:
        # imported when used: the export brings the FHIR models, which most units of work
        # never need
        from neonpro.queries.export import holdings  # noqa: PLC0415

        return holdings(self._uow.connection, patient)

    def collect(self, patient_id: uuid.UUID) -> PatientData:
        from neonpro.queries.export import collect  # noqa: PLC0415

        return collect(self._uow, patient_id)
