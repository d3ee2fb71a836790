"""`neonpro consent expire|check|history` as an operator runs them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from neonpro.adapters.crypto import generate_key_file, load_keyring
from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.consent import ConsentCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.domain.vocabulary import CollectionMethod, ConsentPurpose
from neonpro.services import clinics, consents, patients
from tests.conftest import make_settings

BIN = str(Path(sys.executable).parent / "neonpro")
ME = Actor(uuid.uuid4(), "admin")


def run(url: str, keys: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEONPRO_DATABASE_URL": url, "NEONPRO_KEY_FILE": str(keys)}
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def test_expire_check_and_history(fresh_database_url: str, roles: Roles, tmp_path: Path) -> None:
    url = fresh_database_url
    migrate.upgrade(url, roles)
    keys = tmp_path / "keys.json"
    generate_key_file(keys)
    settings = make_settings(url, key_file=keys)
    box = Container(settings, database_url=url, keyring=load_keyring(settings))
    clinic = clinics.create_clinic(box.service_uow(ME), ClinicCreate(name="C")).id
    pid = patients.register_patient(box.uow(clinic, ME), PatientCreate(full_name="P")).id
    consents.grant_consent(box.uow(clinic, ME), ConsentCreate(
        patient_id=pid, purpose=ConsentPurpose.RESEARCH, terms_version="r1",
        terms_hash=hashlib.sha256(b"r").hexdigest(), collection_method=CollectionMethod.WRITTEN,
        expires_at=datetime.now(UTC) + timedelta(seconds=1)))
    consents.grant_consent(box.uow(clinic, ME), ConsentCreate(
        patient_id=pid, purpose=ConsentPurpose.IMAGE_USE, terms_version="i1",
        terms_hash=hashlib.sha256(b"i").hexdigest(), collection_method=CollectionMethod.WRITTEN,
        data_categories=["images"]))
    box.close()
    import time  # noqa: PLC0415

    time.sleep(1.2)
    expired = run(url, keys, "consent", "expire", "--json")
    assert expired.returncode == 0, expired.stderr
    assert json.loads(expired.stdout) == {"expired": 1}
    check = run(url, keys, "consent", "check", "--clinic", str(clinic), "--json")
    assert check.returncode == 1  # image use without expiry on a sensitive category
    kinds = {f["kind"] for f in json.loads(check.stdout)}
    assert "sensitive_categories_without_expiry" in kinds
    history = run(url, keys, "consent", "history", "--clinic", str(clinic), "--patient",
                  str(pid), "--json")
    assert [r["status"] for r in json.loads(history.stdout)] == ["granted", "granted", "expired"]
