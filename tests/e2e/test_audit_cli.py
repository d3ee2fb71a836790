"""`neonpro audit seal|verify|checkpoint` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from neonpro.adapters.crypto import generate_key_file, load_keyring
from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import clinics, patients
from tests.conftest import make_settings

BIN = str(Path(sys.executable).parent / "neonpro")
ME = Actor(uuid.uuid4(), "admin")


def run(url: str, keys: Path, *args: str,
        extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEONPRO_DATABASE_URL": url, "NEONPRO_KEY_FILE": str(keys),
           "NEONPRO_ENVIRONMENT": "test", **(extra or {})}
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def _keyed(url: str, roles: Roles, tmp_path: Path) -> tuple[Container, Path]:
    """A migrated database and a container on a key file the CLI will read too."""
    migrate.upgrade(url, roles)
    keys = tmp_path / "keys.json"
    generate_key_file(keys)
    settings = make_settings(url, key_file=keys)
    return Container(settings, database_url=url, keyring=load_keyring(settings)), keys


def test_verify_detects_tampering_and_truncation(
    fresh_database_url: str, roles: Roles, tmp_path: Path
) -> None:
    url = fresh_database_url
    box, keys = _keyed(url, roles, tmp_path)
    clinic = clinics.create_clinic(box.service_uow(ME), ClinicCreate(name="CLI")).id
    for i in range(4):
        patients.register_patient(box.uow(clinic, ME), PatientCreate(full_name=f"P {i}"))
    box.close(seal=False)

    verified = run(url, keys, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    reports = {r["clinic_id"]: r for r in json.loads(verified.stdout)}
    assert reports[str(clinic)]["unsealed"] > 0  # nothing sealed it yet

    assert run(url, keys, "audit", "seal").returncode == 0
    checkpoint = tmp_path / "cp.json"
    assert run(url, keys, "audit", "checkpoint", "--out", str(checkpoint)).returncode == 0
    sealed = json.loads(run(url, keys, "audit", "verify", "--json",
                            "--checkpoints", str(checkpoint)).stdout)
    head = next(r for r in sealed if r["clinic_id"] == str(clinic))
    assert head["ok"]
    assert head["unsealed"] == 0
    assert head["checkpoint"] == "matches"

    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL ROLE neonpro_owner"))
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text("DELETE FROM audit_events WHERE clinic_id = :c AND seq = :s"),
                     {"c": clinic, "s": head["head_seq"]})
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    engine.dispose()
    plain = run(url, keys, "audit", "verify", "--clinic", str(clinic))
    assert plain.returncode == 1  # the checkpoint also went into the system chain
    assert "truncated" in plain.stdout
    truncated = run(url, keys, "audit", "verify", "--clinic", str(clinic),
                    "--checkpoints", str(checkpoint))
    assert truncated.returncode == 1
    assert "truncated" in truncated.stdout

    with engine.begin() as conn:
        conn.execute(text("SET LOCAL ROLE neonpro_owner"))
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text("UPDATE audit_events SET actor_role = 'dpo' "
                          "WHERE clinic_id = :c AND seq = 2"), {"c": clinic})
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    engine.dispose()
    edited = run(url, keys, "audit", "verify", "--clinic", str(clinic))
    assert edited.returncode == 1
    assert "BROKEN at seq 2" in edited.stdout


def test_checkpoints_for_cron_and_a_rotated_audit_key(
    fresh_database_url: str, roles: Roles, tmp_path: Path
) -> None:
    """`audit checkpoint` without --out writes into the checkpoint directory; `verify
    --checkpoints DIR` reads every file there; `keys audit-key` rotates the audit key and
    the events of the old one still verify."""
    url = fresh_database_url
    box, keys = _keyed(url, roles, tmp_path)
    settings = box.settings
    clinic = clinics.create_clinic(box.service_uow(ME), ClinicCreate(name="Cron")).id
    patients.register_patient(box.uow(clinic, ME), PatientCreate(full_name="Antes"))
    box.close()
    directory = tmp_path / "checkpoints"
    env_dir = {"NEONPRO_AUDIT_CHECKPOINT_DIR": str(directory)}
    first = run(url, keys, "audit", "checkpoint", extra=env_dir)
    assert first.returncode == 0, first.stderr
    rotated = run(url, keys, "keys", "audit-key", "--json")
    assert json.loads(rotated.stdout)["audit_key_id"] == "a2"
    assert json.loads(keys.read_text())["active_audit_key"] == "a2"
    box = Container(settings, database_url=url, keyring=load_keyring(settings))
    patients.register_patient(box.uow(clinic, ME), PatientCreate(full_name="Depois"))
    box.close()
    assert run(url, keys, "audit", "checkpoint", extra=env_dir).returncode == 0
    assert len(list(directory.glob("checkpoint-*.json"))) == 2
    verified = run(url, keys, "audit", "verify", "--json", "--checkpoints", str(directory))
    assert verified.returncode == 0, verified.stdout
    mine = [r for r in json.loads(verified.stdout) if r["clinic_id"] == str(clinic)]
    assert all(r["ok"] for r in mine)
    with create_engine(url, poolclass=NullPool).connect() as conn:
        used = set(conn.execute(text("SELECT DISTINCT key_id FROM audit_events "
                                     "WHERE clinic_id = :c"), {"c": clinic}).scalars())
    assert used == {"a1", "a2"}
    bad = run(url, keys, "audit", "verify", "--checkpoints", str(tmp_path / "missing"))
    assert bad.returncode == 1
    assert "cannot read checkpoints" in bad.stderr
