"""Patient use cases. Each function owns exactly one transaction of its unit of work."""

from __future__ import annotations

import uuid
from dataclasses import fields

from neonpro.domain import values
from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.schemas.patient import (
    PatientCreate,
    PatientFilters,
    PatientRead,
    PatientSort,
    PatientUpdate,
)
from neonpro.domain.vocabulary import AuditAction, AuditResource, RiskLevel


def register_patient(uow: UnitOfWork, data: PatientCreate) -> PatientRead:
    """Register a patient; a CPF, CNS or record number already in the clinic is a Conflict."""
    with uow:
        patient = uow.patients.add(data)
        uow.commit()
    return patient


BULK_READ = 50  # a list returning more patients than this is a medium-risk security event


def get_patient(uow: UnitOfWork, patient_id: uuid.UUID) -> PatientRead:
    """Read one patient's record; the read is audited (who, whose record, from where)."""
    with uow:
        patient = uow.patients.get(patient_id)
        uow.audit.record(AuditAction.VIEW, AuditResource.PATIENT, patient_id, patient_id=patient_id)
        uow.commit()
    return patient


def find_patient_by_cpf(uow: UnitOfWork, cpf: str) -> PatientRead | None:
    """Look a patient up by CPF; the lookup is audited whether or not it finds one."""
    parsed = values.Cpf.parse(cpf)
    with uow:
        patient = uow.patients.find_by_cpf(parsed)
        uow.audit.record(
            AuditAction.VIEW, AuditResource.PATIENT, patient.id if patient else None,
            patient_id=patient.id if patient else None,
            details={"lookup": "cpf", "found": patient is not None},
        )
        uow.commit()
    return patient


def update_patient(uow: UnitOfWork, patient_id: uuid.UUID, data: PatientUpdate) -> PatientRead:
    """Correct a patient's data; ``data.version`` must be the version the caller read."""
    with uow:
        patient = uow.patients.update(patient_id, data)
        uow.commit()
    return patient


def delete_patient(uow: UnitOfWork, patient_id: uuid.UUID, version: int | None = None) -> None:
    """Soft delete: hidden from every read, kept as a medical record."""
    with uow:
        uow.patients.delete(patient_id, version)
        uow.commit()


def search_patients(
    uow: UnitOfWork,
    filters: PatientFilters | None = None,
    sort: PatientSort | None = None,
    page: PageRequest | None = None,
) -> Page[PatientRead]:
    """A page of patients; audited as one read, a bulk read above BULK_READ rows."""
    with uow:
        result = uow.patients.list(filters, sort, page)
        used = sorted(f.name for f in fields(filters)
                      if getattr(filters, f.name) not in (None, False)) if filters else []
        uow.audit.record(
            AuditAction.VIEW, AuditResource.PATIENT,
            risk=RiskLevel.MEDIUM if len(result.items) > BULK_READ else RiskLevel.LOW,
            details={"returned": len(result.items), "filters": used},
        )
        uow.commit()
    return result
