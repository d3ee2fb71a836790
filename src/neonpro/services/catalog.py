"""Professionals and service types: the clinic's people and catalogue."""

from __future__ import annotations

import uuid

from neonpro.domain.paging import Page, PageRequest
from neonpro.domain.ports import UnitOfWork
from neonpro.domain.schemas.professional import (
    ProfessionalCreate,
    ProfessionalRead,
    ProfessionalUpdate,
)
from neonpro.domain.schemas.service_type import (
    ServiceTypeCreate,
    ServiceTypeRead,
    ServiceTypeUpdate,
)


def add_professional(uow: UnitOfWork, data: ProfessionalCreate) -> ProfessionalRead:
    with uow:
        professional = uow.professionals.add(data)
        uow.commit()
    return professional


def update_professional(uow: UnitOfWork, professional_id: uuid.UUID,
                        data: ProfessionalUpdate) -> ProfessionalRead:
    with uow:
        professional = uow.professionals.update(professional_id, data)
        uow.commit()
    return professional


def list_professionals(uow: UnitOfWork, page: PageRequest | None = None,
                       *, active: bool | None = True) -> Page[ProfessionalRead]:
    with uow:
        result = uow.professionals.list(page, active=active)
        uow.commit()
    return result


def add_service_type(uow: UnitOfWork, data: ServiceTypeCreate) -> ServiceTypeRead:
    with uow:
        service = uow.service_types.add(data)
        uow.commit()
    return service


def update_service_type(uow: UnitOfWork, service_type_id: uuid.UUID,
                        data: ServiceTypeUpdate) -> ServiceTypeRead:
    with uow:
        service = uow.service_types.update(service_type_id, data)
        uow.commit()
    return service


def list_service_types(uow: UnitOfWork, page: PageRequest | None = None,
                       *, active: bool | None = True) -> Page[ServiceTypeRead]:
    with uow:
        result = uow.service_types.list(page, active=active)
        uow.commit()
    return result
