"""Clinics and their staff: the DPO, an administrator, a receptionist, the services the
clinic's specialties offer and their professionals (shifts, rooms, council licences)."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from decimal import Decimal

from neonpro.devtools.demo import people
from neonpro.devtools.demo.reference import (
    ACTOR,
    CLINICS,
    COLORS,
    NO_LOGIN,
    SERVICES,
    SHIFTS,
    SPECIALTIES,
    ZONE_NAME,
    ClinicTemplate,
)
from neonpro.devtools.demo.result import DemoSeedExists
from neonpro.devtools.demo.state import Prof, Run, minutes_of
from neonpro.domain.errors import Conflict
from neonpro.domain.schemas.clinic import ClinicCreate, StaffUserCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.schemas.service_type import ServiceTypeCreate
from neonpro.domain.vocabulary import ClinicRole, CouncilType, CouncilValidation, Gender
from neonpro.services import catalog, clinics


class StaffSeeding(Run):
    """Creates the clinics of the run and everyone who works there."""

    def create_clinics(self) -> None:
        count = 2 if self.n_patients < 300 else 3  # noqa: PLR2004
        for index, template in enumerate(CLINICS[:count]):
            self.create_clinic(index, template)

    def create_clinic(self, index: int, template: ClinicTemplate) -> None:
        rng = self.rng
        _, dpo_given, dpo_family, dpo_name = people.person(rng)
        dpo_email = self.staff_email(template, dpo_given[0], dpo_family)
        try:
            clinic = clinics.create_clinic(self.box.service_uow(ACTOR), ClinicCreate(
                name=f"{template.name} (demo {self.seed})", legal_name=template.legal_name,
                cnpj=people.demo_cnpj(self.seed, index + 1),
                cnes_code=f"{rng.randrange(10**7):07d}",
                timezone=ZONE_NAME, dpo_name=dpo_name, dpo_email=dpo_email,
            ))
        except Conflict as exc:
            if exc.field == "cnpj":
                raise DemoSeedExists(self.seed) from None
            raise
        self.clinic_ids.append(clinic.id)
        self.add_staff(clinic.id, dpo_name, dpo_email, ClinicRole.DPO)
        for role in (ClinicRole.ADMIN, ClinicRole.RECEPTIONIST):
            _, given, family, full = people.person(rng)
            self.add_staff(clinic.id, full, self.staff_email(template, given[0], family), role)
        self.service_ids.append(self.add_services(index, template))
        per_specialty = max(1, math.ceil(self.n_patients / len(CLINICS) / 150))
        for specialty in template.specialties:
            for _ in range(per_specialty):
                self.add_professional(index, template, specialty)

    def add_staff(self, clinic_id: uuid.UUID, name: str, email: str, role: ClinicRole) -> uuid.UUID:
        user, _ = clinics.add_staff_member(self.box.service_uow(ACTOR), clinic_id,
                                           StaffUserCreate(email=email, display_name=name,
                                                           password_hash=NO_LOGIN), role)
        self.user_ids.append(user.id)
        return user.id

    def add_services(self, clinic: int, template: ClinicTemplate) -> dict[str, uuid.UUID]:
        names: dict[str, None] = {}
        for key in template.specialties:
            spec = SPECIALTIES[key]
            names.update(dict.fromkeys((spec.first, *spec.repeat)))
        ids: dict[str, uuid.UUID] = {}
        for name in names:
            s = SERVICES[name]
            created = catalog.add_service_type(self.uow(clinic), ServiceTypeCreate(
                name=s.name, duration_minutes=s.minutes, price=Decimal(s.price),
                category=s.category, tuss_code=s.tuss[0] if s.tuss else None,
            ))
            ids[name] = created.id
        return ids

    def add_professional(self, clinic: int, template: ClinicTemplate, key: str) -> None:
        rng, spec = self.rng, SPECIALTIES[key]
        gender, given, family, full = people.person(rng)
        email = self.staff_email(template, given[0], family)
        user = self.add_staff(self.clinic_ids[clinic], full, email, ClinicRole.PROFESSIONAL)
        shift = rng.choice(SHIFTS)
        buffer, max_daily = rng.choice((0, 10, 15)), rng.choice((12, 16, 20))
        saturdays = rng.random() < 0.4  # noqa: PLR2004
        title = "" if spec.council not in (CouncilType.CRM, CouncilType.CRO) else (
            "Dra. " if gender is Gender.FEMALE else "Dr. ")
        created = catalog.add_professional(self.uow(clinic), ProfessionalCreate(
            full_name=f"{title}{full}", user_id=user, specialization=spec.label,
            council_type=spec.council, council_license=f"{rng.randrange(10_000, 200_000)}",
            council_state=template.city.uf, council_validation=CouncilValidation.VALIDATED,
            license_expiry_date=self.today + timedelta(days=rng.randrange(400, 1500)),
            phone=people.mobile(rng, template.city.ddds[0]), email=email,
            color=COLORS[len(self.profs) % len(COLORS)], work_start_time=shift[0],
            work_end_time=shift[1], break_start_time=shift[2], break_end_time=shift[3],
            can_work_weekends=saturdays, max_daily_appointments=max_daily,
            appointment_buffer_minutes=buffer,
        ))
        in_clinic = sum(1 for p in self.profs if p.clinic == clinic)
        self.profs.append(Prof(
            created.id, len(self.profs), clinic, key, minutes_of(shift[0]), minutes_of(shift[1]),
            minutes_of(shift[2]), minutes_of(shift[3]), buffer, max_daily, saturdays,
            f"Sala {in_clinic + 1}",
        ))
