"""The patient import's rules over the in-memory unit of work: keys used twice in the file
or already in the clinic, all or nothing unless partial, the rejects file without values,
one audit event and one commit, failures reported once."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import pytest

from neonpro.domain.actors import Actor
from neonpro.domain.errors import Conflict
from neonpro.domain.ports_import import ImportFailed
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import AuditAction, AuditResource
from neonpro.services.patient_import import ImportRefused, import_patients
from tests.unit.fakes import FakeUnitOfWork
from tests.valid import cpf

CLINIC = uuid.uuid4()


@pytest.fixture
def uow() -> FakeUnitOfWork:
    tx = FakeUnitOfWork(Actor(uuid.uuid4(), "admin"), CLINIC)
    tx.clinics.seed(CLINIC)
    return tx


def _file(path: Path, rows: list[list[str]], header: tuple[str, ...] = ("full_name", "cpf"),
          ) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _rejects(path: Path) -> list[tuple[str, str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [tuple(r) for r in list(csv.reader(handle))[1:]]  # type: ignore[misc]


def _names(uow: FakeUnitOfWork) -> list[str]:
    return sorted(p.full_name for p in uow.store.get("patients", {}).values())


def test_a_cpf_twice_in_the_file_rejects_both_lines_and_loads_nothing(
        uow: FakeUnitOfWork, tmp_path: Path) -> None:
    source = _file(tmp_path / "p.csv", [["Ana Souza", cpf(1)], ["Bia Lima", cpf(2)],
                                        ["Caio Reis", cpf(1)]])
    result = import_patients(uow, source)
    assert (result.read, result.valid, result.rejected, result.imported) == (3, 1, 2, 0)
    assert not result.ok
    assert _rejects(result.rejects_path) == [("2", "cpf", "the same cpf is on line(s) 4"),
                                             ("4", "cpf", "the same cpf is on line(s) 2")]
    assert cpf(1) not in result.rejects_path.read_text(encoding="utf-8")
    assert (_names(uow), uow.commits, uow.audit.events) == ([], 0, [])


def test_partial_loads_the_rest_when_a_cpf_is_already_in_the_clinic(
        uow: FakeUnitOfWork, tmp_path: Path) -> None:
    uow.patients.add(PatientCreate(full_name="Já Cadastrada", cpf=cpf(7)))
    source = _file(tmp_path / "p.csv", [["Ana Souza", cpf(7)], ["Bia Lima", cpf(8)]])
    refused = import_patients(uow, source)
    assert (refused.imported, _names(uow)) == (0, ["Já Cadastrada"])
    result = import_patients(uow, source, allow_partial=True)
    assert (result.valid, result.rejected, result.imported, result.ok) == (1, 1, 1, True)
    assert _rejects(result.rejects_path) == [
        ("2", "cpf", "a patient of this clinic already has this cpf")]
    assert _names(uow) == ["Bia Lima", "Já Cadastrada"]
    event = uow.audit.events[-1]
    assert (event["action"], event["resource_type"]) == (AuditAction.CREATE,
                                                         AuditResource.PATIENT_IMPORT)
    assert event["details"]["imported"] == 1
    assert event["details"]["rejected"] == 1
    assert len(event["details"]["sha256"]) == 64
    assert uow.commits == 1


def test_an_unknown_professional_is_rejected(uow: FakeUnitOfWork, tmp_path: Path) -> None:
    source = _file(tmp_path / "p.csv", [["Ana Souza", str(uuid.uuid4())]],
                   header=("full_name", "primary_professional_id"))
    result = import_patients(uow, source)
    assert _rejects(result.rejects_path) == [
        ("2", "primary_professional_id", "no such professional in this clinic")]


def test_the_rejects_file_may_not_be_the_source(uow: FakeUnitOfWork, tmp_path: Path) -> None:
    source = _file(tmp_path / "p.csv", [["Ana Souza", cpf(1)]])
    with pytest.raises(ImportRefused):
        import_patients(uow, source, rejects_path=source)
    assert source.read_text(encoding="utf-8").startswith("full_name")


def test_a_refused_commit_is_reported_as_rolled_back(
        uow: FakeUnitOfWork, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise Conflict("another record already has this cpf", "cpf")

    monkeypatch.setattr(uow, "commit", refuse)
    source = _file(tmp_path / "p.csv", [["Ana Souza", cpf(1)]])
    with pytest.raises(ImportFailed) as caught:
        import_patients(uow, source)
    assert caught.value.message == ("the import was rolled back, nothing was loaded: "
                                    "another record already has this cpf")
    assert _names(uow) == []


def test_a_failed_load_is_reported_once(uow: FakeUnitOfWork, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    said = "the import was rolled back, nothing was loaded: database error 53100"

    def fail(*_args: object) -> int:
        raise ImportFailed(said)

    monkeypatch.setattr(uow.patient_import, "load", fail)
    with pytest.raises(ImportFailed) as caught:
        import_patients(uow, _file(tmp_path / "p.csv", [["Ana Souza", cpf(1)]]))
    assert caught.value.message == said
    assert uow.commits == 0
