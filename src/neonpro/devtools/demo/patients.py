"""Patients: identity, contact, clinical history, insurance, and their consents."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from neonpro.devtools.demo import people
from neonpro.devtools.demo.reference import (
    ALLERGIES,
    CLINICS,
    CONDITIONS,
    EMAIL_DOMAINS,
    INSURERS,
    MEDICATIONS,
    PLANS,
    RELATIONS,
    TERMS,
    ClinicTemplate,
)
from neonpro.devtools.demo.state import PatientState, Prof, Run
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import (
    BloodType,
    CollectionMethod,
    ConsentPurpose,
    DataCategory,
    LegalBasis,
    MaritalStatus,
    PreferredContactMethod,
)
from neonpro.services import consents, patients


class PatientSeeding(Run):
    """Registers the run's patients, each with a latent unreliability ``z``."""

    def create_patients(self) -> None:
        n_clinics = len(self.clinic_ids)
        weights = (0.5, 0.3, 0.2)[:n_clinics]
        for index in range(self.n_patients):
            clinic = index if index < n_clinics else self.rng.choices(
                range(n_clinics), weights)[0]
            self.create_patient(index, clinic)
            self.progress("patients", index + 1, self.n_patients)

    def create_patient(self, index: int, clinic: int) -> None:
        rng = self.rng
        template = CLINICS[clinic]
        profs = [p for p in self.profs if p.clinic == clinic]
        prof = profs[min(int(rng.random() ** 1.3 * len(profs)), len(profs) - 1)]
        data = self.patient_data(index, template, prof)
        created = patients.register_patient(self.uow(clinic), data)
        preferred = rng.choice((8 * 60, 9 * 60, 10 * 60, 11 * 60, 14 * 60, 15 * 60, 16 * 60,
                                17 * 60, 18 * 60))
        self.patients.append(PatientState(created.id, index, clinic, prof.index,
                                      rng.gauss(0.0, 1.0), preferred))
        self.grant(clinic, created.id, ConsentPurpose.TREATMENT)
        if rng.random() < 0.45:  # noqa: PLR2004
            self.grant(clinic, created.id, ConsentPurpose.MARKETING)

    def patient_data(self, index: int, template: ClinicTemplate, prof: Prof) -> PatientCreate:
        rng, city = self.rng, template.city
        gender, given, family, full = people.person(rng)
        age_days = int(rng.triangular(18, 78, 38) * 365.25) + rng.randrange(365)
        ddd = rng.choice(city.ddds)
        emergency = people.person(rng) if rng.random() < 0.5 else None  # noqa: PLR2004
        email = (f"{people.email_local(given[0], family)}{rng.randrange(1, 100)}"
                 f"@{rng.choice(EMAIL_DOMAINS)}") if rng.random() < 0.85 else None  # noqa: PLR2004
        insured = rng.random() < 0.3  # noqa: PLR2004
        return PatientCreate(
            medical_record_number=f"{template.slug[:2].upper()}-{index + 1:06d}",
            full_name=full, given_names=given, family_name=family, gender=gender,
            birth_date=self.today - timedelta(days=age_days),
            marital_status=rng.choice(list(MaritalStatus)[:-1]),
            nationality="brasileira", cpf=people.cpf(rng, self.cpfs),
            cns=people.cns(rng, self.cnss),
            phone_primary=people.mobile(rng, ddd),
            phone_secondary=people.landline(rng, ddd) if rng.random() < 0.2 else None,  # noqa: PLR2004
            email=email, preferred_contact_method=rng.choices(
                list(PreferredContactMethod)[:4], (15, 10, 60, 15))[0],
            address_line1=f"{rng.choice(city.streets)}, {rng.randrange(1, 3000)}",
            address_line2=f"apto {rng.randrange(1, 30)}{rng.randrange(1, 5)}"
            if rng.random() < 0.4 else None,  # noqa: PLR2004
            city=city.name, state=city.uf, postal_code=f"{rng.randrange(*city.cep_range):08d}",
            country="BR",
            blood_type=rng.choice(list(BloodType)).value if rng.random() < 0.7 else None,  # noqa: PLR2004
            allergies=rng.sample(ALLERGIES, rng.randint(1, 2)) if rng.random() < 0.2 else [],  # noqa: PLR2004
            chronic_conditions=[rng.choice(CONDITIONS)] if rng.random() < 0.15 else [],  # noqa: PLR2004
            current_medications=[rng.choice(MEDICATIONS)] if rng.random() < 0.2 else [],  # noqa: PLR2004
            primary_professional_id=prof.id,
            insurance_provider=rng.choice(INSURERS) if insured else None,
            insurance_plan=rng.choice(PLANS) if insured else None,
            insurance_number=f"{rng.randrange(10**15):015d}" if insured else None,
            emergency_contact_name=emergency[3] if emergency else None,
            emergency_contact_phone=people.mobile(rng, ddd) if emergency else None,
            emergency_contact_relationship=rng.choice(RELATIONS) if emergency else None,
            data_source="demo", registration_source="demo_seed",
        )

    def grant(self, clinic: int, patient_id: uuid.UUID, purpose: ConsentPurpose) -> None:
        version, text = TERMS[purpose]
        treatment = purpose is ConsentPurpose.TREATMENT
        consents.grant_consent(self.uow(clinic), ConsentCreate(
            patient_id=patient_id, purpose=purpose,
            legal_basis=LegalBasis.HEALTH_PROTECTION if treatment else LegalBasis.CONSENT,
            terms_version=version, terms_hash=hashlib.sha256(text.encode()).hexdigest(),
            collection_method=CollectionMethod.WRITTEN if treatment
            else CollectionMethod.ONLINE_FORM,
            evidence={"channel": "front_desk" if treatment else "online_form",
                      "source": "demo_seed"},
            data_categories=[DataCategory.IDENTIFICATION, DataCategory.CONTACT,
                             DataCategory.ADDRESS, DataCategory.CLINICAL] if treatment
            else [DataCategory.CONTACT, DataCategory.MARKETING],
        ))
        self.consents += 1
