"""Minimal valid rows for every table, so isolation tests can cover the whole schema."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert, text
from sqlalchemy.orm import Session

from neonpro.adapters.db.models import Base

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
ACTOR = uuid.UUID("00000000-0000-0000-0000-0000000000aa")


def _t(name: str) -> Table:
    return Base.metadata.tables[name]


def _cnpj() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(14))


def _insert(session: Session, table: str, **values: Any) -> uuid.UUID:
    values.setdefault("id", uuid.uuid4())
    session.execute(insert(_t(table)).values(**values))
    return values["id"]  # type: ignore[no-any-return]


def seed_clinic(session: Session, name: str = "Clinic") -> uuid.UUID:
    return _insert(session, "clinics", name=name, cnpj=_cnpj())


def seed_world(session: Session, clinic_id: uuid.UUID) -> dict[str, uuid.UUID]:
    """One row in every tenant table of ``clinic_id`` (plus a staff user); returns their ids."""
    c = clinic_id
    ids: dict[str, uuid.UUID] = {"clinics": c}
    user = _insert(session, "staff_users", email=f"u{secrets.token_hex(4)}@example.test",
                   display_name="Staff", password_hash="x")
    ids["staff_users"] = user
    session.execute(insert(_t("clinic_memberships")).values(
        clinic_id=c, user_id=user, role="admin"))
    ids["clinic_memberships"] = user
    ids["professionals"] = prof = _insert(session, "professionals", clinic_id=c,
                                          full_name="Dr. Test", user_id=user)
    ids["service_types"] = svc = _insert(session, "service_types", clinic_id=c,
                                         name="Consulta", duration_minutes=30)
    ids["patients"] = patient = _insert(
        session, "patients", clinic_id=c, medical_record_number=f"MRN-{secrets.token_hex(3)}",
        full_name="Patient", cpf_blind_index=secrets.token_bytes(32),
    )
    ids["appointments"] = appointment = _insert(
        session, "appointments", clinic_id=c, patient_id=patient, professional_id=prof,
        service_type_id=svc, start_time=T0, end_time=T0 + timedelta(minutes=30), created_by=ACTOR,
    )
    ids["no_show_models"] = model = _insert(
        session, "no_show_models", clinic_id=c, version=1, kind="prior", training_rows=0,
        training_no_shows=0,
    )
    session.execute(insert(_t("appointment_risk_scores")).values(
        clinic_id=c, appointment_id=appointment, score=12, model_id=model,
        model_version="v1-prior"))
    ids["appointment_risk_scores"] = appointment
    ids["consent_records"] = consent = _insert(
        session, "consent_records", clinic_id=c, patient_id=patient, purpose="marketing",
        legal_basis="consent", status="granted", given_at=T0, terms_version="v1",
        terms_hash="a" * 64,
    )
    # the clinic's events come from its row changes above: a service transaction bound to
    # no clinic may not write an event into a clinic's chain itself
    ids["audit_events"] = session.execute(text(
        "SELECT id FROM audit_events WHERE clinic_id = :c AND resource_type = 'patients' "
        "LIMIT 1"), {"c": c}).scalar_one()
    ids["data_subject_requests"] = _insert(
        session, "data_subject_requests", clinic_id=c, patient_id=patient, kind="access",
        received_at=T0, due_at=T0 + timedelta(days=15),
    )
    ids["erasure_ledger"] = _insert(session, "erasure_ledger", clinic_id=c, patient_id=patient,
                                    outcome="blocked", decisions={})
    ids["retention_policies"] = _insert(
        session, "retention_policies", clinic_id=c, data_category="marketing",
        trigger="consent_revoked", period=timedelta(days=30), action="delete",
        legal_reference="LGPD Art. 16",
    )
    ids["disclosures"] = _insert(
        session, "disclosures", clinic_id=c, patient_id=patient, recipient_name="Lab",
        data_description="exam results", purpose="diagnosis", legal_basis="health_protection",
        consent_record_id=consent,
    )
    ids["commit_tokens"] = token = uuid.uuid4()
    session.execute(insert(_t("commit_tokens")).values(clinic_id=c, token=token))
    ids["idempotency_keys"] = claim = uuid.uuid4()
    session.execute(insert(_t("idempotency_keys")).values(
        clinic_id=c, key_hash=secrets.token_bytes(32), request_hash=secrets.token_bytes(32),
        claim=claim, state="done", server_started=T0, lease_until=T0,
        expires_at=T0 + timedelta(days=1)))
    ids["security_incidents"] = _insert(
        session, "security_incidents", clinic_id=c, detected_at=T0, learned_at=T0,
        description="lost laptop",
    )
    return ids
