"""Patient use cases. Each function owns exactly one transaction of its unit of work."""

from __future__ import annotations

import uuid

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


def register_patient(uow: UnitOfWork, data: PatientCreate) -> PatientRead:
    """Register a patient; a CPF, CNS or record number already in the clinic is a Conflict."""
    with uow:
        patient = uow.patients.add(data)
        uow.commit()
    return patient


def get_patient(uow: UnitOfWork, patient_id: uuid.UUID) -> PatientRead:
    with uow:
        patient = uow.patients.get(patient_id)
        uow.commit()
    return patient


def find_patient_by_cpf(uow: UnitOfWork, cpf: str) -> PatientRead | None:
    parsed = values.Cpf.parse(cpf)
    with uow:
        patient = uow.patients.find_by_cpf(parsed)
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
    with uow:
        result = uow.patients.list(filters, sort, page)
        uow.commit()
    return result
