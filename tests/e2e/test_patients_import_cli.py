"""`neonpro patients import` as an operator runs it: a subprocess with a key file."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.crypto import generate_key_file, load_keyring
from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain import values
from neonpro.domain.actors import Actor, SystemActors
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.services import clinics
from tests.conftest import create_database, drop_database, make_settings
from tests.valid import cpf

BIN = str(Path(sys.executable).parent / "neonpro")
ME = Actor(uuid.uuid4(), "admin")


@dataclass(frozen=True)
class World:
    url: str
    keys: Path
    clinic: uuid.UUID
    box: Container


@pytest.fixture(scope="module")
def world(admin_url: str, roles: Roles, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    url = create_database(admin_url, "import")
    keys = tmp_path_factory.mktemp("keys") / "keys.json"
    generate_key_file(keys)
    settings = make_settings(url, key_file=keys)
    box = Container(settings, database_url=url, keyring=load_keyring(settings))
    try:
        migrate.upgrade(url, roles)
        clinic = clinics.create_clinic(box.service_uow(ME), ClinicCreate(name="Importadora")).id
        yield World(url, keys, clinic, box)
    finally:
        box.close(seal=False)
        drop_database(admin_url, url)


def run(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEONPRO_DATABASE_URL": world.url, "NEONPRO_KEY_FILE": str(world.keys),
           "NEONPRO_ENVIRONMENT": "test"}
    return subprocess.run([BIN, "patients", "import", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def count(world: World) -> int:
    engine = create_engine(world.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SET ROLE neonpro_service"))
            return int(conn.execute(text("SELECT count(*) FROM patients WHERE clinic_id = :c"),
                                    {"c": world.clinic}).scalar_one())
    finally:
        engine.dispose()


def flat(output: str) -> str:
    """Output with Rich's line wrapping undone."""
    return " ".join(output.split())


def clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr
    assert "Traceback" not in result.stdout


def test_import_all_or_nothing_then_partial(world: World, tmp_path: Path) -> None:
    good = [[f"Paciente Linha {i}", cpf(9500 + i), "(21) 3456-7890"] for i in range(5)]
    bad_cpf = cpf(9599)[:-1] + str((int(cpf(9599)[-1]) + 1) % 10)
    rows = [*good[:2], ["Paciente Errado", bad_cpf, ""], *good[2:]]  # the bad row is line 4
    source = write(tmp_path / "lote.csv", ["full_name", "cpf", "phone_primary"], rows)

    refused = run(world, str(source), "--clinic", str(world.clinic), "--json")
    assert refused.returncode == 1, refused.stderr
    clean(refused)
    report = json.loads(refused.stdout)
    assert (report["read"], report["valid"], report["rejected"], report["imported"]) == (
        6, 5, 1, 0)
    assert report["ok"] is False
    rejects = Path(report["rejects_file"])
    assert rejects == tmp_path / "lote.rejects.csv"
    assert rejects.read_text(encoding="utf-8").splitlines() == [
        "line,field,reason", "4,cpf,invalid check digits"]
    assert count(world) == 0

    elsewhere = tmp_path / "out" / "rejeitados.csv"
    elsewhere.parent.mkdir()
    partial = run(world, str(source), "--clinic", str(world.clinic), "--allow-partial",
                  "--rejects", str(elsewhere))
    assert partial.returncode == 0, partial.stderr
    clean(partial)
    assert "read 6, valid 5, rejected 1, imported 5" in flat(partial.stdout)
    assert str(elsewhere) in partial.stdout.replace("\n", "")
    assert elsewhere.exists()
    assert count(world) == 5
    with world.box.uow(world.clinic, ME) as uow:
        found = uow.patients.find_by_cpf(values.Cpf.parse(cpf(9502)))
    assert found is not None
    assert found.full_name == "Paciente Linha 2"
    assert found.created_by == SystemActors.CLI.id

    # the container sealed the audit events (one per patient) before the command exited
    verify = subprocess.run(
        [BIN, "audit", "verify", "--clinic", str(world.clinic), "--json"], capture_output=True,
        text=True, timeout=120, check=False,
        env={**os.environ, "NEONPRO_DATABASE_URL": world.url,
             "NEONPRO_KEY_FILE": str(world.keys), "NEONPRO_ENVIRONMENT": "test"})
    assert verify.returncode == 0, verify.stdout + verify.stderr
    chain = json.loads(verify.stdout)[0]
    assert chain["ok"] is True
    assert chain["unsealed"] == 0
    assert chain["head_seq"] >= 5

    again = run(world, str(source), "--clinic", str(world.clinic))
    assert again.returncode == 1
    clean(again)
    assert "nothing was loaded" in flat(again.stdout)
    assert count(world) == 5


def test_clean_errors(world: World, tmp_path: Path) -> None:
    unknown = write(tmp_path / "colunas.csv", ["full_name", "nome_da_mae"], [["Ana", "Bia"]])
    result = run(world, str(unknown), "--clinic", str(world.clinic))
    assert result.returncode == 1
    clean(result)
    assert "unknown column(s)" in flat(result.stderr)
    assert "nome_da_mae" in flat(result.stderr)
    assert not (tmp_path / "colunas.rejects.csv").exists()

    missing = run(world, str(tmp_path / "nao-existe.csv"), "--clinic", str(world.clinic))
    assert missing.returncode == 1
    clean(missing)
    assert "does not exist" in flat(missing.stderr)

    fine = write(tmp_path / "ok.csv", ["full_name"], [["Ana"]])
    nobody = run(world, str(fine), "--clinic", str(uuid.uuid4()), "--json")
    assert nobody.returncode == 1
    clean(nobody)
    assert "not found" in flat(nobody.stderr)
    assert nobody.stdout == ""

    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("full_name\nJoão\n".encode("latin-1"))
    encoded = run(world, str(latin1), "--clinic", str(world.clinic))
    assert encoded.returncode == 1
    clean(encoded)
    assert "not UTF-8" in flat(encoded.stderr)
