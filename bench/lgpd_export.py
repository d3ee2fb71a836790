"""LGPD export benchmark: one patient with 500 appointments and 50 consents.

    .venv/bin/python bench/lgpd_export.py                    # 500 appointments, 50 consents
    .venv/bin/python bench/lgpd_export.py --appointments 2000 --rounds 10

Creates a scratch database ``neonpro_bench_*`` on the server of ``--url`` (only used to
CREATE/DROP it), migrates it, seeds one clinic with a handful of other patients and one
patient with N appointments (encrypted clinical and internal notes, through the
repository, so every note is a real AES-GCM value) and M consent ledger rows (grants, a
quarter of them revoked), a few disclosures and requests; then times
``export_patient`` (the whole service call: one transaction, decryption, rendering,
SHA-256, EXPORT audit event, commit) as JSON and as a FHIR R4 Bundle, and prints the
median and worst wall seconds of each, and the median CPU seconds of this process (the
wall time on a busy machine is mostly waiting). The target is under 2 seconds.

Beside it, the raw-driver path on the same data: one psycopg connection doing the same
database work as one export (the context ``set_config`` as the application role, the
same reads of every table, the same EXPORT audit ``INSERT``, ``COMMIT``), rendering the
rows with ``json.dumps`` and hashing them, but decrypting nothing and building no FHIR
resource; so ours/raw is what decryption, mapping and FHIR validation cost over the floor
of the database work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg
from _setup import (
    DEFAULT_ADMIN_URL,
    ROLES,
    create_scratch_database,
    drop_scratch_database,
    make_keyring,
    make_settings,
)
from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql

from neonpro.adapters.db import migrate
from neonpro.adapters.db.database import SET_CONTEXT, context_params
from neonpro.adapters.db.models import Disclosure
from neonpro.adapters.db.repositories.audit import INSERT as AUDIT_INSERT
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.appointment import AppointmentCreate
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.domain.vocabulary import (
    CollectionMethod,
    ConsentPurpose,
    DataSubjectRequestKind,
)
from neonpro.queries import export as export_queries
from neonpro.services import clinics, patients
from neonpro.services import lgpd_requests as lgpd

ACTOR = Actor(uuid.UUID(int=0x5E5_0000_0099), "system")
TERMS = hashlib.sha256(b"termos").hexdigest()
NOTE = ("Paciente relata sensibilidade cutânea; evitar ácidos acima de 10%. Retorno em 30 "
        "dias para avaliação do procedimento.")


def seed(box: Container, appointments: int, consent_rows: int) -> tuple[uuid.UUID, uuid.UUID]:
    clinic = clinics.create_clinic(box.service_uow(ACTOR), ClinicCreate(name="Bench LGPD")).id
    with box.uow(clinic, ACTOR) as tx:
        pros = [tx.professionals.add(ProfessionalCreate(
            full_name=f"Dra. Bench {i}", council_type="CRM", council_state="SP",
            council_license=f"{100000 + i}")).id for i in range(5)]
        tx.commit()
    pid = patients.register_patient(box.uow(clinic, ACTOR), PatientCreate(
        full_name="Paciente Com Muitos Dados", cpf="11144477735", email="p@example.com.br",
        phone_primary="11987654321", city="São Paulo", state="SP", allergies=["dipirona"],
        chronic_conditions=["asma"], blood_type="A+", patient_notes=NOTE)).id
    for i in range(20):
        patients.register_patient(box.uow(clinic, ACTOR), PatientCreate(full_name=f"Outro {i}"))
    start = datetime(2020, 1, 6, 12, 0, tzinfo=UTC)
    with box.uow(clinic, ACTOR) as tx:
        for i in range(appointments):
            at = start + timedelta(days=i // 4, hours=(i % 4) * 2)
            tx.appointments.add(AppointmentCreate(
                patient_id=pid, professional_id=pros[i % len(pros)], start_time=at,
                end_time=at + timedelta(minutes=45), clinical_notes=NOTE,
                internal_notes="ok", notes="trazer exames", chief_complaint="rotina",
                tuss_code="10101012", tuss_procedure_name="Consulta em consultório"),
                time_zone="America/Sao_Paulo")
        tx.commit()
    purposes = list(ConsentPurpose)
    with box.uow(clinic, ACTOR) as tx:
        granted = [tx.consents.add(ConsentCreate(
            patient_id=pid, purpose=purposes[i % len(purposes)], terms_version=f"v{i}",
            terms_hash=TERMS, collection_method=CollectionMethod.ONLINE_FORM,
            data_categories=["contact"])).id for i in range(consent_rows - consent_rows // 4)]
        for consent_id in granted[: consent_rows // 4]:
            tx.consents.revoke(consent_id)
        for i in range(5):
            tx.connection.execute(insert(cast(Table, Disclosure.__table__)).values(
                clinic_id=clinic, id=uuid.uuid4(), patient_id=pid, recipient_name=f"Lab {i}",
                data_description="exames", data_categories=["clinical"], purpose="diagnóstico",
                legal_basis="health_protection"))
        tx.commit()
    for kind in (DataSubjectRequestKind.ACCESS, DataSubjectRequestKind.PORTABILITY):
        lgpd.open_request(box.uow(clinic, ACTOR), lgpd.RequestOpen(patient_id=pid, kind=kind))
    box.seal_audit()
    return clinic, pid


def _sql(statement: object) -> str:
    """The text ours sends, with psycopg placeholders."""
    statement = getattr(statement, "statement", statement)  # a hot statement's construct
    return str(statement.compile(dialect=postgresql.psycopg.dialect()))  # type: ignore[attr-defined,no-untyped-call]


RAW_READS = (
    "SELECT * FROM patients WHERE clinic_id = %(c)s AND id = %(p)s",
    "SELECT * FROM appointments WHERE clinic_id = %(c)s AND patient_id = %(p)s "
    "ORDER BY start_time, id",
    "SELECT * FROM consent_records WHERE clinic_id = %(c)s AND patient_id = %(p)s "
    "ORDER BY created_at, id",
    _sql(export_queries.DISCLOSURES),
    "SELECT * FROM data_subject_requests WHERE clinic_id = %(c)s AND patient_id = %(p)s "
    "ORDER BY received_at, id",
    _sql(export_queries.ERASURES),
    _sql(export_queries.AUDIT_EVENTS),
)


def raw_export(conn: psycopg.Connection[tuple[object, ...]], clinic: uuid.UUID,
               pid: uuid.UUID) -> bytes:
    """The database work of one export on the bare driver (see the module docstring)."""
    cur = conn.cursor()
    cur.execute(_sql(SET_CONTEXT), context_params(clinic, ACTOR.id, ACTOR.role))
    params = {"c": clinic, "p": pid}
    tables = [cur.execute(sql, params).fetchall() for sql in RAW_READS]
    involved = list({row[3] for row in tables[1]})  # appointments.professional_id
    tables.append(cur.execute(_sql(export_queries.PROFESSIONALS),
                              {"c": clinic, "ids": involved}).fetchall())
    content = json.dumps(tables, default=str).encode()
    cur.execute(_sql(AUDIT_INSERT), {
        "clinic": clinic, "actor": ACTOR.id, "role": ACTOR.role, "action": "EXPORT",
        "rtype": "patient", "rid": str(pid), "patient": str(pid), "status": "success",
        "risk": "medium", "ip": None, "ua": None, "session": None, "request": None,
        "details": json.dumps({"format": "raw", "sha256": hashlib.sha256(content).hexdigest(),
                               "records": {"tables": len(tables)}})})
    conn.commit()
    return content


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=DEFAULT_ADMIN_URL, help="server (CREATE/DROP only)")
    parser.add_argument("--appointments", type=int, default=500)
    parser.add_argument("--consents", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    url = create_scratch_database(args.url)
    try:
        migrate.upgrade(url, ROLES)
        box = Container(make_settings(url), database_url=url, keyring=make_keyring())
        try:
            t0 = time.perf_counter()
            clinic, pid = seed(box, args.appointments, args.consents)
            print(f"seeded {args.appointments} appointments, {args.consents} consent rows "
                  f"in {time.perf_counter() - t0:.1f} s")
            worst = 0.0
            medians: dict[str, float] = {}
            with psycopg.connect(url) as conn:
                appointment_columns = [c.name for c in conn.execute(
                    "SELECT * FROM appointments LIMIT 0").description or ()]
                assert appointment_columns[3] == "professional_id", appointment_columns
                raw_export(conn, clinic, pid)  # warm-up
                for fmt in (lgpd.ExportFormat.JSON, lgpd.ExportFormat.FHIR, "raw"):
                    if fmt != "raw":
                        lgpd.export_patient(box.uow(clinic, ACTOR), pid, fmt)  # warm-up
                    samples, cpu = [], []
                    size = 0
                    for _ in range(args.rounds):
                        t, c = time.perf_counter(), time.process_time()
                        if fmt == "raw":
                            size = len(raw_export(conn, clinic, pid))
                        else:
                            result = lgpd.export_patient(box.uow(clinic, ACTOR), pid, fmt)
                            size = len(result.content)
                        samples.append(time.perf_counter() - t)
                        cpu.append(time.process_time() - c)
                    name = fmt if isinstance(fmt, str) else fmt.value
                    medians[name] = statistics.median(samples)
                    if fmt != "raw":
                        worst = max(worst, *samples)
                    print(f"{name:>4}: median {medians[name]:.3f} s "
                          f"(client CPU {statistics.median(cpu):.3f} s), "
                          f"max {max(samples):.3f} s, {size / 1024:.0f} KiB"
                          + ("" if fmt == "raw" else f", counts {result.counts}"))
            print(f"ratio ours/raw (median wall): json {medians['json'] / medians['raw']:.2f}, "
                  f"fhir {medians['fhir'] / medians['raw']:.2f}")
            print(f"target < 2 s: {'met' if worst < 2 else 'MISSED'} (worst {worst:.3f} s)")
            return 0 if worst < 2 else 1
        finally:
            box.close()
    finally:
        drop_scratch_database(args.url, url)


if __name__ == "__main__":
    sys.exit(main())
