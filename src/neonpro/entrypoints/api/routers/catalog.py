"""The clinic, its professionals and its service types."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, status

from neonpro.domain.paging import PageRequest
from neonpro.domain.schemas.clinic import ClinicRead
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
from neonpro.entrypoints.api.deps import ADMIN, EVERYONE, Caller, caller_with
from neonpro.entrypoints.api.pages import PageOut, page_request, to_page
from neonpro.entrypoints.api.routing import OneHopRoute
from neonpro.services import catalog as svc
from neonpro.services import clinics

router = APIRouter(route_class=OneHopRoute)


@router.get("/clinic", response_model=ClinicRead, tags=["clinics"])
def my_clinic(caller: Annotated[Caller, Depends(caller_with(EVERYONE))]) -> ClinicRead:
    """The caller's clinic (the one in the token)."""
    return clinics.get_clinic(caller.uow())


@router.get("/professionals", response_model=PageOut[ProfessionalRead], tags=["professionals"])
def professionals(caller: Annotated[Caller, Depends(caller_with(EVERYONE))],
                  page: Annotated[PageRequest, Depends(page_request)],
                  active: bool | None = True) -> PageOut[ProfessionalRead]:
    result = svc.list_professionals(caller.uow(), page, active=active)
    return to_page(result, result.items)


@router.post("/professionals", status_code=status.HTTP_201_CREATED,
             response_model=ProfessionalRead, tags=["professionals"])
def add_professional(data: ProfessionalCreate,
                     caller: Annotated[Caller, Depends(caller_with(ADMIN))]) -> ProfessionalRead:
    return svc.add_professional(caller.uow(), data)


@router.patch("/professionals/{professional_id}", response_model=ProfessionalRead,
              tags=["professionals"])
def change_professional(professional_id: uuid.UUID, data: ProfessionalUpdate,
                        caller: Annotated[Caller, Depends(caller_with(ADMIN))],
                        ) -> ProfessionalRead:
    return svc.update_professional(caller.uow(), professional_id, data)


@router.get("/service-types", response_model=PageOut[ServiceTypeRead], tags=["service types"])
def service_types(caller: Annotated[Caller, Depends(caller_with(EVERYONE))],
                  page: Annotated[PageRequest, Depends(page_request)],
                  active: bool | None = True) -> PageOut[ServiceTypeRead]:
    result = svc.list_service_types(caller.uow(), page, active=active)
    return to_page(result, result.items)


@router.post("/service-types", status_code=status.HTTP_201_CREATED,
             response_model=ServiceTypeRead, tags=["service types"])
def add_service_type(data: ServiceTypeCreate,
                     caller: Annotated[Caller, Depends(caller_with(ADMIN))]) -> ServiceTypeRead:
    return svc.add_service_type(caller.uow(), data)


@router.patch("/service-types/{service_type_id}", response_model=ServiceTypeRead,
              tags=["service types"])
def change_service_type(service_type_id: uuid.UUID, data: ServiceTypeUpdate,
                        caller: Annotated[Caller, Depends(caller_with(ADMIN))],
                        ) -> ServiceTypeRead:
    return svc.update_service_type(caller.uow(), service_type_id, data)
