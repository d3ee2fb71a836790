"""``neonpro keys`` end to end, as an operator runs it (subprocesses with a key file)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from neonpro.adapters.crypto import generate_key_file, load_keyring
from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain import values
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.appointment import AppointmentCreate
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.schemas.professional import ProfessionalCreate
from neonpro.services import catalog, clinics, patients
from tests.conftest import make_settings
from tests.valid import cns, cpf

BIN = str(Path(sys.executable).parent / "neonpro")
STAFF = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000d1"), "receptionist")
ADMIN = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000d2"), "system")
N_PATIENTS = 4
TOTAL = N_PATIENTS * 3 + 2  # cpf, cns, notes per patient; an appointment's two notes
_KEY_VARS = ("NEONPRO_KEY_FILE", "NEONPRO_ENCRYPTION_KEYS", "NEONPRO_BLIND_INDEX_KEY",
             "NEONPRO_ACTIVE_KEY_ID", "NEONPRO_NEXT_BLIND_INDEX_KEY")


def run(url: str, *args: str, key_file: Path | None = None, extra: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _KEY_VARS}
    env.update({"NEONPRO_DATABASE_URL": url, "NEONPRO_ENVIRONMENT": "test"})
    if key_file is not None:
        env["NEONPRO_KEY_FILE"] = str(key_file)
    env.update(extra or {})
    result = subprocess.run([BIN, "keys", *args], capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    # Rich wraps stderr at 80 columns when it is not a terminal: compare words, not lines
    result.stderr = " ".join(result.stderr.split())
    return result


def box_for(url: str, key_file: Path) -> Container:
    settings = make_settings(url, key_file=key_file)
    return Container(settings, database_url=url, keyring=load_keyring(settings))


class Seeded:
    def __init__(self, url: str, key_file: Path) -> None:
        self.url = url
        box = box_for(url, key_file)
        try:
            self.clinic = clinics.create_clinic(box.service_uow(ADMIN),
                                                ClinicCreate(name="Clínica")).id
            prof = catalog.add_professional(box.uow(self.clinic, STAFF),
                                            ProfessionalCreate(full_name="Dr. Zé")).id
            self.ids = [patients.register_patient(box.uow(self.clinic, STAFF), PatientCreate(
                full_name=f"Paciente {n}", cpf=cpf(n), cns=cns(n), patient_notes=f"nota {n}",
            )).id for n in range(N_PATIENTS)]
            start = datetime(2026, 3, 2, 12, tzinfo=UTC)
            with box.uow(self.clinic, STAFF) as tx:
                self.appointment = tx.appointments.add(AppointmentCreate(
                    patient_id=self.ids[0], professional_id=prof, start_time=start,
                    end_time=start + timedelta(minutes=30), clinical_notes="dor",
                    internal_notes="retorno"), time_zone="America/Sao_Paulo").id
                tx.commit()
        finally:
            box.close()

    def read(self, key_file: Path) -> list[object]:
        box = box_for(self.url, key_file)
        try:
            with box.uow(self.clinic, STAFF) as tx:
                found = [tx.patients.get(i).patient_notes for i in self.ids]
                appt = tx.appointments.get(self.appointment)
                by_cpf = tx.patients.find_by_cpf(values.Cpf.parse(cpf(1)))
            return [*found, appt.clinical_notes, appt.internal_notes,
                    by_cpf.id if by_cpf else None]
        finally:
            box.close()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "neonpro-keys.json"
    generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return path


@pytest.fixture
def seeded(fresh_database_url: str, key_file: Path) -> Seeded:
    migrate.upgrade(fresh_database_url, Roles())
    return Seeded(fresh_database_url, key_file)


def _status(url: str, key_file: Path) -> dict[str, object]:
    result = run(url, "status", "--json", key_file=key_file)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_add_rotate_remove_reindex(seeded: Seeded, key_file: Path) -> None:
    url = seeded.url
    expected = [*(f"nota {n}" for n in range(N_PATIENTS)), "dor", "retorno", seeded.ids[1]]
    assert seeded.read(key_file) == expected

    status = _status(url, key_file)
    assert status["active_key_id"] == "k1"
    assert status["by_key"] == {"k1": TOTAL}
    assert status["remaining"] == 0

    added = run(url, "add", "--json", key_file=key_file)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {"key_id": "k2", "active": True,
                                        "key_file": str(key_file)}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert _status(url, key_file)["by_key"] == {"k1": TOTAL, "k2": 0}
    assert seeded.read(key_file) == expected  # new writes use k2, old values still read

    partial = run(url, "rotate", "--batch", "2", "--max-batches", "1", "--json",
                  key_file=key_file)
    assert partial.returncode == 0, partial.stderr
    report = json.loads(partial.stdout)
    assert report["complete"] is False
    assert report["rotated"] == 2 * 3
    assert report["status"]["by_key"] == {"k1": TOTAL - 6, "k2": 6}
    assert "run `neonpro keys rotate` again" in partial.stderr

    refused = run(url, "remove", "k1", key_file=key_file)
    assert refused.returncode == 1
    assert f"{TOTAL - 6} value(s) are still encrypted under k1" in refused.stderr

    rest = run(url, "rotate", "--batch", "3", key_file=key_file)
    assert rest.returncode == 0, rest.stderr
    assert "re-encrypting under k2" in rest.stderr  # the progress bar, on stderr
    assert f"re-encrypted {TOTAL - 6} value(s)" in rest.stdout
    assert "0 value(s) not under it" in rest.stdout
    assert _status(url, key_file)["by_key"] == {"k1": 0, "k2": TOTAL}

    removed = run(url, "remove", "k1", key_file=key_file)
    assert removed.returncode == 0, removed.stderr
    assert sorted(json.loads(key_file.read_text())["keys"]) == ["k2"]
    assert seeded.read(key_file) == expected  # without k1

    old_blind = json.loads(key_file.read_text())["blind_index_key"]
    reindexed = run(url, "reindex", "--yes", "--json", key_file=key_file)
    assert reindexed.returncode == 0, reindexed.stderr
    data = json.loads(reindexed.stdout)
    assert (data["updated"], data["conflicts"], data["promoted"]) == (N_PATIENTS, [], True)
    doc = json.loads(key_file.read_text())
    assert doc["blind_index_key"] != old_blind
    assert doc["retired_blind_index_keys"][0]["key"] == old_blind
    assert "next_blind_index_key" not in doc
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert seeded.read(key_file) == expected  # CPF lookup works with the new blind key

    text_status = run(url, "status", key_file=key_file)
    assert text_status.returncode == 0, text_status.stderr
    assert "active key: k2" in text_status.stdout
    for result in (added, partial, rest, removed, reindexed, text_status):
        assert "Traceback" not in result.stderr
        for secret in (old_blind, doc["blind_index_key"], *doc["keys"].values()):
            assert secret not in result.stdout + result.stderr


def test_add_without_activate_then_activate(key_file: Path, fresh_database_url: str) -> None:
    added = run(fresh_database_url, "add", "--no-activate", key_file=key_file)
    assert added.returncode == 0, added.stderr
    assert "keys activate k2" in added.stderr
    assert json.loads(key_file.read_text())["active"] == "k1"
    activated = run(fresh_database_url, "activate", "k2", key_file=key_file)
    assert activated.returncode == 0, activated.stderr
    assert json.loads(key_file.read_text())["active"] == "k2"
    unknown = run(fresh_database_url, "activate", "k9", key_file=key_file)
    assert unknown.returncode == 1
    assert "that key id is not in key file" in unknown.stderr


def test_env_var_keys_are_not_changed_by_add(fresh_database_url: str) -> None:
    extra = {"NEONPRO_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
             "NEONPRO_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode()}
    result = run(fresh_database_url, "add", extra=extra)
    assert result.returncode == 1
    assert "NEONPRO_ACTIVE_KEY_ID" in result.stderr
    assert "NEONPRO_ENCRYPTION_KEYS" in result.stderr
    assert "Traceback" not in result.stderr


def test_rotation_with_a_missing_key_stops_cleanly(seeded: Seeded, key_file: Path,
                                                   tmp_path: Path) -> None:
    other = tmp_path / "other" / "keys.json"
    generate_key_file(other)
    doc = json.loads(other.read_text())
    doc["keys"] = {"k2": doc["keys"]["k1"]}
    doc["active"] = "k2"
    other.write_text(json.dumps(doc))
    result = run(seeded.url, "rotate", key_file=other)
    assert result.returncode == 1
    assert "patients.cpf_encrypted (key id k1)" in result.stderr
    assert "nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert _status(seeded.url, key_file)["by_key"] == {"k1": TOTAL}


def test_a_key_file_readable_by_others_is_refused(key_file: Path,
                                                  fresh_database_url: str) -> None:
    key_file.chmod(0o644)
    result = run(fresh_database_url, "add", key_file=key_file)
    assert result.returncode == 1
    assert "chmod 600" in result.stderr
    assert "Traceback" not in result.stderr
