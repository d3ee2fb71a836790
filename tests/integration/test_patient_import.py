"""Patient import from CSV on a real PostgreSQL: validation, rejects, all-or-nothing COPY."""

from __future__ import annotations

import csv
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from neonpro.adapters.db.repositories import patient_import as patient_loader
from neonpro.adapters.db.repositories.patient import SqlPatientRepository
from neonpro.adapters.db.repositories.patient_import import SqlPatientLoader
from neonpro.bootstrap import Container
from neonpro.domain import values
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.paging import PageRequest
from neonpro.domain.ports_import import ExistingKeys
from neonpro.domain.schemas.patient import PatientCreate, PatientFilters
from neonpro.services import patients as svc
from neonpro.services.patient_import import ImportFailed, ImportRefused, import_patients
from tests.factories import ACTOR, seed_clinic
from tests.sessions import service_session
from tests.valid import cns, cpf

STAFF = Actor(ACTOR, "receptionist")
CLI = SystemActors.CLI
HEADER = ["full_name", "cpf", "cns", "phone_primary", "birth_date", "given_names",
          "address_line1", "state", "email"]


@pytest.fixture
def clinics(container: Container) -> tuple[uuid.UUID, uuid.UUID]:
    with service_session(container.database, ACTOR) as session:
        return seed_clinic(session, "Import A"), seed_clinic(session, "Import B")


def _row(**cells: str) -> list[str]:
    return [cells.get(name, "") for name in HEADER]


def _write(path: Path, header: list[str], rows: list[list[str]], *, bom: bool = False) -> Path:
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _count(container: Container, clinic: uuid.UUID) -> int:
    with service_session(container.database, ACTOR) as session:
        return int(session.execute(text(
            "SELECT count(*) FROM patients WHERE clinic_id = :c"), {"c": clinic}).scalar_one())


def _create_events(container: Container, clinic: uuid.UUID) -> list[str]:
    with service_session(container.database, ACTOR) as session:
        return [str(r) for r in session.execute(text(
            "SELECT resource_id FROM audit_events WHERE clinic_id = :c "
            "AND resource_type = 'patients' AND action = 'CREATE'"), {"c": clinic}).scalars()]


class Mixed:
    """A file of good and bad rows; ``bad`` is what the rejects file must say."""

    def __init__(self, tmp_path: Path, existing_cpf: str) -> None:
        wrong_check = cpf(9102)[:-1] + str((int(cpf(9102)[-1]) + 1) % 10)
        self.good_cpfs = [cpf(9101), cpf(9108)]
        self.secrets = [wrong_check, cpf(9103)[:10], cpf(9104), existing_cpf, *self.good_cpfs,
                        "987654321", "98765-4321", "Ana Importada", "Bruno Importado"]
        rows = [
            _row(full_name="Ana Importada", cpf=self.good_cpfs[0], phone_primary="(11) 98765-4321",
                 birth_date="12/03/1980", given_names="Ana; Maria", state="sp"),       # line 2
            _row(full_name="Caio Ruim", cpf=wrong_check),                              # line 3
            _row(full_name="Davi Curto", cpf=cpf(9103)[:10]),                          # line 4
            _row(full_name="Eva Fone", phone_primary="(11) 1234"),                     # line 5
            _row(cpf=cpf(9105)),                                                       # line 6
            _row(full_name="Gil Duplo", cpf=cpf(9104)),                                # line 7
            _row(full_name="Hugo Duplo", cpf=cpf(9104)),                               # line 8
            _row(full_name="Ivo Existente", cpf=existing_cpf),                         # line 9
            _row(full_name="Bruno Importado", cpf=self.good_cpfs[1], cns=cns(9108),
                 address_line1="Rua das Flores, 10\nApto 2", email="bruno@example.com"),  # 10-11
            _row(full_name="Jade Estado", state="XX"),                                 # line 12
        ]
        self.path = _write(tmp_path / "patients.csv", HEADER, rows)
        self.bad = {
            (3, "cpf"), (4, "cpf"), (5, "phone_primary"), (6, "full_name"), (7, "cpf"),
            (8, "cpf"), (9, "cpf"), (12, "state"),
        }


@pytest.fixture
def mixed(container: Container, clinics: tuple[uuid.UUID, uuid.UUID], tmp_path: Path) -> Mixed:
    a, _ = clinics
    existing = cpf(9199)
    svc.register_patient(container.uow(a, STAFF), PatientCreate(full_name="Ja Cadastrada",
                                                                cpf=existing))
    return Mixed(tmp_path, existing)


def test_default_mode_loads_nothing_and_lists_every_bad_line(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID], mixed: Mixed
) -> None:
    a, _ = clinics
    result = import_patients(container.uow(a, CLI), mixed.path)
    assert (result.read, result.valid, result.rejected, result.imported) == (10, 2, 8, 0)
    assert not result.ok
    assert _count(container, a) == 1  # only the patient registered before
    assert result.rejects_path == mixed.path.with_name("patients.rejects.csv")
    rejects = _rejects(result.rejects_path)
    assert {(int(r["line"]), r["field"]) for r in rejects} == mixed.bad
    reasons = {(int(r["line"]), r["field"]): r["reason"] for r in rejects}
    assert reasons[3, "cpf"] == "invalid check digits"
    assert reasons[4, "cpf"] == "must have 11 digits"
    assert reasons[6, "full_name"] == "is required"
    assert reasons[7, "cpf"] == "the same cpf is on line(s) 8"
    assert reasons[9, "cpf"] == "a patient of this clinic already has this cpf"
    content = result.rejects_path.read_text(encoding="utf-8")
    for secret in mixed.secrets:
        assert secret not in content
    assert "@" not in content


def test_allow_partial_loads_exactly_the_good_rows(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID], mixed: Mixed
) -> None:
    a, b = clinics
    before = set(_create_events(container, a))
    result = import_patients(container.uow(a, CLI), mixed.path, allow_partial=True)
    assert (result.valid, result.rejected, result.imported) == (2, 8, 2)
    assert result.ok
    assert _count(container, a) == 3
    assert {(int(r["line"]), r["field"]) for r in _rejects(result.rejects_path)} == mixed.bad

    ana = svc.find_patient_by_cpf(container.uow(a, STAFF), mixed.good_cpfs[0])
    assert ana is not None
    assert ana.cpf == mixed.good_cpfs[0]
    assert ana.full_name == "Ana Importada"
    assert ana.given_names == ["Ana", "Maria"]
    assert ana.birth_date == date(1980, 3, 12)
    assert ana.phone_primary == "11987654321"
    assert ana.state == "SP"
    assert ana.created_by == CLI.id
    assert ana.updated_by == CLI.id
    assert ana.medical_record_number.startswith("P-")
    # the defaults the repository's insert writes for absent values
    assert (ana.nationality, ana.country, ana.language_preference) == ("brasileira", "BR", "pt-BR")
    assert (ana.allergies, ana.external_ids, ana.deceased_indicator) == ([], {}, False)
    assert (ana.version, ana.data_consent_status, ana.is_active) == (1, "pending", True)

    with container.uow(a, STAFF) as uow:
        bruno = uow.patients.find_by_cns(values.Cns.parse(cns(9108)))
        assert bruno is not None
        assert bruno.cpf == mixed.good_cpfs[1]
        assert bruno.address_line1 == "Rua das Flores, 10\nApto 2"
        assert bruno.email == "bruno@example.com"

    for number in mixed.good_cpfs:  # another clinic sees none of them
        assert svc.find_patient_by_cpf(container.uow(b, STAFF), number) is None
    assert svc.search_patients(container.uow(b, STAFF), PatientFilters(),
                               page=PageRequest(with_total=True)).total == 0

    created = set(_create_events(container, a)) - before
    assert created == {str(ana.id), str(bruno.id)}  # one trigger event per imported row
    with service_session(container.database, ACTOR) as session:
        summary = session.execute(text(
            "SELECT actor_id, details FROM audit_events WHERE clinic_id = :c "
            "AND resource_type = 'patient_import'"), {"c": a}).one()
    assert summary.actor_id == CLI.id
    assert summary.details["imported"] == 2
    assert summary.details["rejected"] == 8


def test_a_clean_file_loads_and_a_second_run_finds_every_row_already_there(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = clinics
    monkeypatch.setattr(patient_loader, "INSERT_CHUNK", 4)  # 7 chunks, the last one short
    header = ["full_name", "cpf", "medical_record_number", "allergies", "deceased_indicator",
              "external_ids", "gender"]
    rows = [[f"Paciente Lote {i}", cpf(9200 + i), f"MRN-{i}", "dipirona;látex", "não",
             '{"legado": "' + str(i) + '"}', "female"] for i in range(25)]
    source = _write(tmp_path / "clean.csv", header, rows, bom=True)
    progress: list[tuple[str, int, int]] = []
    result = import_patients(container.uow(a, CLI), source,
                             progress=lambda *p: progress.append(p))
    assert (result.read, result.valid, result.rejected, result.imported) == (25, 25, 0, 25)
    assert result.ok
    assert _rejects(result.rejects_path) == []
    assert ("validate", 25, 25) in progress
    assert ("load", 25, 25) in progress
    assert [p for p in progress if p[0] == "insert"] == [
        ("insert", n, 25) for n in (0, 4, 8, 12, 16, 20, 24, 25)]
    with container.uow(a, STAFF) as uow:
        got = uow.patients.find_by_cpf(values.Cpf.parse(cpf(9203)))
    assert got is not None
    assert got.medical_record_number == "MRN-3"
    assert got.allergies == ["dipirona", "látex"]
    assert got.external_ids == {"legado": "3"}
    assert got.gender == "female"

    again = import_patients(container.uow(a, CLI), source, allow_partial=True)
    assert (again.valid, again.rejected, again.imported) == (0, 25, 0)
    assert not again.ok
    assert {r.field for r in again.rejections} == {"cpf", "medical_record_number"}
    assert _count(container, a) == 25


def test_a_failure_during_copy_loads_nothing(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = clinics
    rows = [[f"Paciente Falha {i}", cpf(9300 + i)] for i in range(10)]
    source = _write(tmp_path / "fail.csv", ["full_name", "cpf"], rows)
    original = SqlPatientRepository._to_row
    calls = 0

    def failing(self: SqlPatientRepository, patient_id: uuid.UUID,
                fields: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise RuntimeError("disk full")
        return original(self, patient_id, fields)

    monkeypatch.setattr(SqlPatientRepository, "_to_row", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        import_patients(container.uow(a, CLI), source)
    assert calls == 6  # five rows were already streamed when it failed
    assert _count(container, a) == 0
    assert _create_events(container, a) == []

    monkeypatch.setattr(SqlPatientRepository, "_to_row", original)
    result = import_patients(container.uow(a, CLI), source)  # the pool's connection is clean
    assert result.imported == 10
    assert _count(container, a) == 10


def test_a_row_the_database_refuses_rolls_the_whole_import_back(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, _ = clinics
    taken = cpf(9400)
    svc.register_patient(container.uow(a, STAFF), PatientCreate(full_name="Primeira Pessoa",
                                                                cpf=taken))
    rows = [[f"Paciente Lote {i}", cpf(9401 + i)] for i in range(20)]
    rows.insert(12, ["Paciente Repetido", taken])
    source = _write(tmp_path / "race.csv", ["full_name", "cpf"], rows)
    # as if the patient had been registered between validation and load
    monkeypatch.setattr(SqlPatientLoader, "existing_keys",
                        lambda _self, _columns: ExistingKeys())
    with pytest.raises(ImportFailed) as caught:
        import_patients(container.uow(a, CLI), source)
    message = str(caught.value)
    assert "rolled back" in message
    assert "cpf" in message
    assert taken not in message
    assert _count(container, a) == 1
    assert len(_create_events(container, a)) == 1


@pytest.mark.parametrize(("content", "expected"), [
    (b"full_name,cpf,nome_social,cpff\nAna,,,\n",
     "unknown column(s) in f.csv: 'nome_social', 'cpff' (did you mean 'cpf'?)"),
    (b"full_name,,cpf\nAna,,\n", "column 2 has no name"),
    (b"Maria Sem Cabecalho,11144477735\n", "is not a header of patient fields"),
    (b"full_name;cpf\nAna;\n", "separated by semicolons"),
    (b"cpf\n11144477735\n", "has no full_name column"),
    (b"full_name,cpf,CPF\nAna,,\n", "cpf appear more than once"),
    (b"", "is empty"),
    (b"full_name\nJos\xe9\n", "is not UTF-8 text (line 2)"),
    (b'full_name\n"Ana\n', "is not valid CSV at line 2"),
])
def test_a_file_that_cannot_be_read_as_a_whole_is_refused(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID], tmp_path: Path,
    content: bytes, expected: str,
) -> None:
    a, _ = clinics
    source = tmp_path / "f.csv"
    source.write_bytes(content)
    with pytest.raises(ImportRefused) as caught:
        import_patients(container.uow(a, CLI), source)
    message = str(caught.value)
    assert expected in message
    assert "Maria" not in message
    assert "11144477735" not in message
    assert not (tmp_path / "f.rejects.csv").exists()
    assert _count(container, a) == 0


def test_refusals_before_reading(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID], tmp_path: Path
) -> None:
    a, _ = clinics
    missing = tmp_path / "missing.csv"
    with pytest.raises(ImportRefused, match="does not exist"):
        import_patients(container.uow(a, CLI), missing)
    source = _write(tmp_path / "p.csv", ["full_name"], [["Ana"]])
    with pytest.raises(ImportRefused, match="must not be the file being imported"):
        import_patients(container.uow(a, CLI), source, rejects_path=source)
    with pytest.raises(ImportRefused, match="cannot write the rejects file"):
        import_patients(container.uow(a, CLI), source,
                        rejects_path=tmp_path / "no" / "such" / "dir.csv")
    assert _count(container, a) == 0


def test_row_shape_dates_booleans_and_professionals(
    container: Container, clinics: tuple[uuid.UUID, uuid.UUID], tmp_path: Path
) -> None:
    a, _ = clinics
    header = ["full_name", "birth_date", "deceased_indicator", "deceased_date",
              "primary_professional_id", "external_ids"]
    rows = [
        ["Ok Um", "1990-01-31", "", "", "", ""],                              # line 2
        ["Data Ruim", "31/02/1990", "", "", "", ""],                          # line 3
        ["Sim Nao", "", "talvez", "", "", ""],                                # line 4
        ["Obito Sem", "", "", "2020-01-01", "", ""],                          # line 5
        ["Prof Fantasma", "", "", "", str(uuid.uuid4()), ""],                 # line 6
        ["Json Ruim", "", "", "", "", "[1, 2]"],                              # line 7
        ["Curta"],                                                            # line 8
        ["Ok Dois", "", "sim", "01/02/2020", "", ""],                         # line 9
    ]
    source = _write(tmp_path / "shape.csv", header, rows)
    result = import_patients(container.uow(a, CLI), source, allow_partial=True)
    got = {(r.line, r.field): r.reason for r in result.rejections}
    assert got[3, "birth_date"] == "is not a valid date (YYYY-MM-DD or DD/MM/YYYY)"
    assert got[4, "deceased_indicator"].startswith("is not a yes/no value")
    assert got[5, "row"] == "deceased_date needs deceased_indicator"
    assert got[6, "primary_professional_id"] == "no such professional in this clinic"
    assert got[7, "external_ids"].startswith("must be a JSON object")
    assert got[8, "row"] == "has 1 values, the header has 6 columns"
    assert result.imported == 2
    page = svc.search_patients(container.uow(a, STAFF), PatientFilters(name="ok dois"))
    assert page.items[0].deceased_date == date(2020, 2, 1)
    assert page.items[0].deceased_indicator is True
