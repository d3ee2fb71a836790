"""Clinic administration (service role: creating tenants and accounts crosses clinics)."""

from __future__ import annotations

import uuid

from neonpro.domain.ports import UnitOfWork
from neonpro.domain.schemas.clinic import (
    ClinicCreate,
    ClinicRead,
    MembershipRead,
    StaffUserCreate,
    StaffUserRead,
)
from neonpro.domain.vocabulary import ClinicRole


def create_clinic(service_uow: UnitOfWork, data: ClinicCreate) -> ClinicRead:
    with service_uow:
        clinic = service_uow.clinics.add(data)
        service_uow.commit()
    return clinic


def add_staff_member(service_uow: UnitOfWork, clinic_id: uuid.UUID, data: StaffUserCreate,
                     role: ClinicRole) -> tuple[StaffUserRead, MembershipRead]:
    """Create an account and make it a member of ``clinic_id`` in one transaction."""
    with service_uow:
        user = service_uow.clinics.add_user(data)
        membership = service_uow.clinics.add_membership(clinic_id, user.id, role)
        service_uow.commit()
    return user, membership


def get_clinic(uow: UnitOfWork) -> ClinicRead:
    with uow:
        clinic = uow.clinics.get()
        uow.commit()
    return clinic


def list_clinics(service_uow: UnitOfWork) -> list[ClinicRead]:
    """Every clinic, by name (the service role: it crosses clinics)."""
    with service_uow:
        clinics = service_uow.clinics.list()
        service_uow.commit()
    return clinics
