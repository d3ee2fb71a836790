"""The operator's view of a restore that cannot prove its erasures re-applied: its own exit
code (4), one line naming the command that finishes the job, `neonpro serve` refusing the
database, and the finishing commands (backup and point-in-time)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import psycopg

from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import clinics, erasure, patients
from tests.conftest import make_settings
from tests.e2e.test_cli import BIN
from tests.valid import cpf

NOWHERE = "postgresql://nobody@127.0.0.1:1/none"
DPO = Actor(uuid.uuid4(), "dpo")


def run(url: str, backups: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEONPRO_")}
    env.update(NEONPRO_DATABASE_URL=url, NEONPRO_ENVIRONMENT="test",
               NEONPRO_BACKUP_DIR=str(backups), **extra)
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def _error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def _app_can_read(url: str) -> bool:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        conn.execute("SET ROLE neonpro_app")
        try:
            conn.execute("SELECT count(*) FROM public.patients")
        except psycopg.errors.InsufficientPrivilege:
            return False
    return True


def test_an_unproven_restore_exits_4_and_the_database_waits_for_the_finish(
        fresh_database_url: str, second_database_url: str, tmp_path: Path) -> None:
    url, target, backups = fresh_database_url, second_database_url, tmp_path / "backups"
    migrate.upgrade(url, Roles())
    box = Container(make_settings(url), database_url=url)
    try:
        clinic = clinics.create_clinic(box.service_uow(DPO), ClinicCreate(name="Cli")).id
        gone = patients.register_patient(box.uow(clinic, DPO), PatientCreate(
            full_name="Apagada Na Linha De Comando", cpf=cpf(9501))).id
    finally:
        box.close()
    made = run(url, backups, "backup", "create", "--json")
    assert made.returncode == 0, made.stderr
    backup_id = json.loads(made.stdout)["id"]
    box = Container(make_settings(url), database_url=url)
    try:
        erasure.erase_patient(box.admin_uow(clinic, DPO), gone)
    finally:
        box.close()
    # the live database does not answer: restored, exit 4, one line naming the finish
    restored = run(NOWHERE, backups, "backup", "restore", backup_id, "--target", target)
    assert restored.returncode == 4, restored.stdout + restored.stderr
    line = _error_line(restored)
    assert f"neonpro backup reapply {backup_id} --target" in line
    assert "--accept-erasure-risk" in line
    assert not _app_can_read(target)
    served = run(target, backups, "serve", "--no-migrate", "--port", "1")
    assert served.returncode == 4
    assert "closed to the application" in _error_line(served)
    # still unreachable: the finish refuses (exit 4), the database stays closed
    refused = run(NOWHERE, backups, "backup", "reapply", backup_id, "--target", target)
    assert refused.returncode == 4
    assert "could not be read" in _error_line(refused)
    assert not _app_can_read(target)
    # the live database answers: finished, opened, the erasure re-applied
    done = run(url, backups, "backup", "reapply", backup_id, "--target", target, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["erasures_proven"] is True
    assert _app_can_read(target)
    with psycopg.connect(target.replace("+psycopg", "")) as conn:
        names = [r[0] for r in conn.execute("SELECT full_name FROM patients").fetchall()]
    assert "Apagada Na Linha De Comando" not in names
    assert run(target, backups, "db", "health").returncode == 0


def test_a_point_in_time_restore_whose_ledger_was_unreadable_stays_closed(
        fresh_database_url: str, tmp_path: Path) -> None:
    """`pitr restore` saves the erasures to keep before the rewind, with whether they are
    complete; here they are not (the ledger did not answer then): the rewound database is
    closed until the risk is accepted, which the audit trail records."""
    url = fresh_database_url
    migrate.upgrade(url, Roles())
    pitr_dir = tmp_path / "pitr"
    pitr_dir.mkdir()
    (pitr_dir / "pending-erasures.json").write_text(json.dumps(
        {"proven": False, "erasures": []}))
    held = run(url, tmp_path, "pitr", "reapply", NEONPRO_PITR_DIR=str(pitr_dir))
    assert held.returncode == 4, held.stdout + held.stderr
    assert "--accept-erasure-risk" in _error_line(held)
    assert not _app_can_read(url)
    assert (pitr_dir / "pending-erasures.json").exists()  # kept for the next attempt
    opened = run(url, tmp_path, "pitr", "reapply", "--accept-erasure-risk",
                 NEONPRO_PITR_DIR=str(pitr_dir))
    assert opened.returncode == 0, opened.stdout + opened.stderr
    assert _app_can_read(url)
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        accepted = conn.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'RESTORE' AND risk_level = "
            "'critical' AND details ->> 'accepted_risk' = 'true'").fetchone()
    assert accepted == (1,)
