"""A restore that cannot prove erasures were re-applied fails, and leaves the database closed
to the application role, by the database itself, until the job is finished or the risk is
explicitly accepted (and audited).

The trial of issue 14: the live ledger unreachable and no later backup, ``backup restore``
said ``"ok": true`` with a warning, and the erased patient's name, CPF, phone, e-mail and
address were back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from neonpro.adapters.db import migrate
from neonpro.adapters.db.database import Database
from neonpro.adapters.db.health import check_health
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.services import backup as svc
from neonpro.services import clinics, erasure, patients
from tests.conftest import create_database, drop_database, make_keyring, make_settings
from tests.sessions import service_session
from tests.valid import cpf

DPO = Actor(uuid.UUID("00000000-0000-0000-0000-0000000000e9"), "dpo")
NOWHERE = "postgresql://nobody@127.0.0.1:1/none"
ERASED = "Apagada Depois Do Backup"


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def live(admin_url: str, tmp_path: Path) -> Iterator[tuple[Container, uuid.UUID, str]]:
    """A live database, a backup of it, then an erasure only the live ledger knows."""
    url = create_database(admin_url, "hold")
    migrate.upgrade(url, Roles())
    box = Container(make_settings(url, backup_dir=tmp_path / "backups"), database_url=url,
                    keyring=make_keyring())
    try:
        clinic = clinics.create_clinic(box.service_uow(DPO), ClinicCreate(name="Hold")).id
        gone = patients.register_patient(box.uow(clinic, DPO), PatientCreate(
            full_name=ERASED, cpf=cpf(9401), email="apagada@exemplo.test",
            phone_primary="(11) 97777-6666", address_line1="Rua do Esquecimento, 1"))
        patients.register_patient(box.uow(clinic, DPO), PatientCreate(
            full_name="Fica Na Base", cpf=cpf(9402)))
        backup = svc.create_backup(box)
        erasure.erase_patient(box.admin_uow(clinic, DPO), gone.id)
        box.seal_audit()
        yield box, clinic, backup.id
    finally:
        box.close()
        drop_database(admin_url, url)


@pytest.fixture
def lost(live: tuple[Container, uuid.UUID, str]) -> Iterator[Container]:
    """The same backups, the live database unreachable (its server is gone)."""
    box = Container(make_settings(NOWHERE, backup_dir=live[0].settings.backup_dir),
                    database_url=NOWHERE, keyring=live[0].keyring)
    try:
        yield box
    finally:
        box.close()


def _names(url: str) -> list[str]:
    with psycopg.connect(_plain(url)) as conn:  # superuser: what is physically there
        return [r[0] for r in conn.execute("SELECT full_name FROM patients").fetchall()]


def _as_app(url: str, clinic: uuid.UUID) -> list[str]:
    """What someone running SQL as the application role reads."""
    with psycopg.connect(_plain(url)) as conn:
        conn.execute("SELECT set_config('role', 'neonpro_app', false), "
                     "set_config('app.clinic_id', %s, false)", (str(clinic),))
        return [r[0] for r in conn.execute("SELECT full_name FROM public.patients").fetchall()]


def test_an_unproven_restore_fails_and_stays_closed_until_finished(
        live: tuple[Container, uuid.UUID, str], lost: Container, second_database_url: str,
        ) -> None:
    box, clinic, backup_id = live
    target = second_database_url
    backup = svc.find(box.backup_store(), backup_id)
    report = svc.restore_backup(lost, backup, target)
    assert not report.ok
    assert report.held
    assert not report.erasures_proven
    assert report.finish is not None
    assert f"neonpro backup reapply {backup_id}" in report.finish
    # the erased patient is physically back (only the live ledger knew of the erasure) ...
    assert ERASED in _names(target)
    # ... and the database refuses it, and everything else, to the application role
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_app(target, clinic)
    health = check_health(Database(make_settings(target)))
    assert health["checks"]["restore_hold"]["ok"] is False
    assert "neonpro backup reapply" in health["checks"]["restore_hold"]["reason"]
    # migrating again (as `neonpro serve` does) does not open it
    migrate.upgrade(target, Roles())
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_app(target, clinic)
    # finishing needs the live ledger: still unreachable, it refuses and changes nothing
    with pytest.raises(svc.BackupError, match="could not be read"):
        svc.finish_restore(lost, backup, target)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        _as_app(target, clinic)
    # the live database answers again: the erasure is re-applied, the database opened
    done = svc.finish_restore(box, backup, target)
    assert done.erasures_proven
    assert done.reapplied_erasures == 1
    assert done.health["ok"], done.health
    seen = _as_app(target, clinic)
    assert ERASED not in seen
    assert "Fica Na Base" in seen
    assert ERASED not in _names(target)


def test_accepting_the_risk_opens_it_and_is_audited(
        live: tuple[Container, uuid.UUID, str], lost: Container, second_database_url: str,
        ) -> None:
    box, clinic, backup_id = live
    target = second_database_url
    backup = svc.find(box.backup_store(), backup_id)
    report = svc.restore_backup(lost, backup, target, accept_erasure_risk=True)
    assert not report.held
    assert not report.erasures_proven
    assert report.ok, report.problems
    assert "Fica Na Base" in _as_app(target, clinic)
    restored = Container(make_settings(target), database_url=target, keyring=box.keyring)
    try:
        with service_session(restored.database, DPO.id) as session:
            accepted = session.execute(text(
                "SELECT count(*) FROM audit_events WHERE action = 'RESTORE' AND risk_level = "
                "'critical' AND details ->> 'accepted_risk' = 'true'")).scalar_one()
    finally:
        restored.close()
    assert accepted == 1


def test_a_proven_restore_opens_at_once(
        live: tuple[Container, uuid.UUID, str], second_database_url: str) -> None:
    box, clinic, backup_id = live
    report = svc.restore_backup(box, svc.find(box.backup_store(), backup_id),
                                second_database_url)
    assert report.ok, report.problems
    assert report.erasures_proven
    assert not report.held
    assert report.reapplied_erasures == 1
    assert ERASED not in _as_app(second_database_url, clinic)


def test_the_live_database_gone_is_unproven_too(
        live: tuple[Container, uuid.UUID, str], admin_url: str) -> None:
    """Restoring into the configured database itself after it was lost (disaster
    recovery): nothing records the erasures decided after the newest backup."""
    box, _clinic, backup_id = live
    fresh = create_database(admin_url, "dr")
    dr = Container(make_settings(fresh, backup_dir=box.settings.backup_dir),
                   database_url=fresh, keyring=box.keyring)
    try:
        report = svc.restore_backup(dr, svc.find(box.backup_store(), backup_id), fresh)
        assert report.held
        assert any("gone or empty" in w for w in report.warnings)
    finally:
        dr.close()
        drop_database(admin_url, fresh)
