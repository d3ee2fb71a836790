"""The audit trail against the database owner and a superuser, tampering by tampering.

Every tampering below is done on the owner's own login with every guard trigger switched
off (what the owner of the tables can always do), then ``verify`` must name it: without any
checkpoint, with the checkpoint the service records into the system chain, and with a
signed checkpoint file. The one thing neither chain nor database can see is written down
as a test too: events sealed after the last checkpoint can vanish (the residual window,
``NEONPRO_AUDIT_CHECKPOINT_INTERVAL_S``), and a rewrite by someone who holds the audit key
is caught only by a checkpoint kept outside the database.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from neonpro.adapters.crypto import KeyRing
from neonpro.adapters.db import migrate
from neonpro.adapters.db.audit import (
    ChainReport,
    Checkpoint,
    read_checkpoints,
    seal_pending,
    verify_chains,
)
from neonpro.adapters.db.audit_text import audit_v1, audit_v2
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate, PatientUpdate
from neonpro.services import clinics, patients
from tests.conftest import make_keyring, make_settings
from tests.sessions import service_session
from tests.tamper import as_owner, owner_url

ME = Actor(uuid.UUID("00000000-0000-0000-0000-00000000a0e1"), "admin", ip_address="10.0.0.9")
SYSTEM = Actor(uuid.UUID("00000000-0000-0000-0000-00000000a0e2"), "system")


@pytest.fixture
def box(fresh_database_url: str, roles: Roles, tmp_path: Path) -> Iterator[Container]:
    migrate.upgrade(fresh_database_url, roles)
    container = Container(make_settings(fresh_database_url,
                                        audit_checkpoint_dir=tmp_path / "checkpoints"),
                          database_url=fresh_database_url, keyring=make_keyring())
    try:
        yield container
    finally:
        container.close(seal=False)


def _clinic(box: Container, name: str = "Alvo", people: int = 3) -> uuid.UUID:
    clinic = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name=name)).id
    for i in range(people):
        pid = patients.register_patient(box.uow(clinic, ME), PatientCreate(
            full_name=f"Pessoa {i}")).id
        patients.update_patient(box.uow(clinic, ME), pid, PatientUpdate(version=1, city="Olinda"))
    seal_pending(box.database, box.keyring, SYSTEM)
    return clinic


def _verify(box: Container, clinic: uuid.UUID, keyring: KeyRing | None = None,
            checkpoints: list[Checkpoint] | None = None) -> ChainReport:
    reports = verify_chains(box.database, SYSTEM, keyring or box.keyring, clinic, checkpoints)
    return next(r for r in reports if r.clinic_id == clinic and r.chain == "audit_events")


def _files(box: Container) -> list[Checkpoint]:
    return read_checkpoints(box.settings.audit_checkpoint_dir)


@pytest.fixture
def world(box: Container) -> dict[str, object]:
    """Two clinics, sealed; a checkpoint taken (file + system chain); one event more."""
    target, other = _clinic(box), _clinic(box, "Outra")
    box.checkpoints.take(full=True)
    patients.register_patient(box.uow(target, ME), PatientCreate(full_name="Depois"))
    seal_pending(box.database, box.keyring, SYSTEM)
    report = _verify(box, target, checkpoints=_files(box))
    assert report.ok, report
    assert report.checkpoint == "matches"
    return {"target": target, "other": other, "head": report.head_seq}


def _rehash(box: Container, clinic: uuid.UUID, keyring: KeyRing | None, *,
            from_seq: int, unkeyed: bool = False) -> list[str]:
    """What a tamperer does after editing: recompute every hash from ``from_seq`` to the
    head, with the public unkeyed encoding, or with a key (the right one: a superuser who
    also holds the audit key)."""
    import psycopg  # noqa: PLC0415

    from neonpro.adapters.db.audit_text import text_mode  # noqa: PLC0415

    dsn = owner_url(box).replace("postgresql+psycopg://", "postgresql://")
    statements = []
    with psycopg.connect(dsn) as conn:
        text_mode(conn)
        rows = conn.execute(
            "SELECT clinic_id, seq, id, occurred_at, actor_id, actor_role, action, "
            "resource_type, resource_id, patient_ref, status, risk_level, ip_address, "
            "user_agent, session_id, request_id, details, retain_until, prev_hash, hash, key_id "
            "FROM audit_events WHERE clinic_id = %s AND seq IS NOT NULL ORDER BY seq",
            (clinic,)).fetchall()
    prev = None
    for row in rows:
        if row[1] < from_seq:
            prev = row[-2][2:]
            continue
        if unkeyed:
            digest = hashlib.sha256(audit_v1(row, str(row[1]), prev).encode()).hexdigest()
            key_sql = "NULL"
        else:
            assert keyring is not None
            key_id, key = keyring.active_audit_key
            digest = hmac.new(key, audit_v2(row, key_id, str(row[1]), prev).encode(),
                              hashlib.sha256).hexdigest()
            key_sql = f"'{key_id}'"
        statements.append(
            f"UPDATE audit_events SET prev_hash = {_hex(prev)}, hash = '\\x{digest}', "
            f"key_id = {key_sql} WHERE clinic_id = '{clinic}' AND id = '{row[2]}'")
        prev = digest
    return statements


def _hex(value: str | None) -> str:
    return "NULL" if value is None else f"'\\x{value}'"


EDIT = ("UPDATE audit_events SET actor_role = 'dpo', details = '{{}}' "
        "WHERE clinic_id = '{c}' AND seq = 3")
TAMPERINGS = {
    "edit": [EDIT],
    "delete in the middle": ["DELETE FROM audit_events WHERE clinic_id = '{c}' AND seq = 3"],
    "delete and renumber": [
        "DELETE FROM audit_events WHERE clinic_id = '{c}' AND seq = 3",
        "UPDATE audit_events SET seq = seq - 1 WHERE clinic_id = '{c}' AND seq > 3"],
    "insert": [
        "UPDATE audit_events SET seq = seq + 1000 WHERE clinic_id = '{c}' AND seq >= 3",
        "UPDATE audit_events SET seq = seq - 999 WHERE clinic_id = '{c}' AND seq >= 1003",
        "INSERT INTO audit_events (clinic_id, id, seq, action, retain_until, prev_hash, hash, "
        "key_id) SELECT clinic_id, gen_random_uuid(), 3, 'VIEW', current_date, hash, hash, "
        "key_id FROM audit_events WHERE clinic_id = '{c}' AND seq = 2"],
    "swap two events": [
        "UPDATE audit_events SET seq = 1000000 WHERE clinic_id = '{c}' AND seq = 3",
        "UPDATE audit_events SET seq = 3 WHERE clinic_id = '{c}' AND seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE clinic_id = '{c}' AND seq = 1000000"],
    # a copy in the other clinic's chain and the original deleted (Citus moves no row from
    # one clinic's shard to another's with an UPDATE; the result is the same)
    "move an event to another clinic": [
        "INSERT INTO audit_events SELECT (jsonb_populate_record(a, jsonb_build_object("
        "'clinic_id', '{o}', 'seq', 1000))).* FROM audit_events a "
        "WHERE clinic_id = '{c}' AND seq = 3",
        "DELETE FROM audit_events WHERE clinic_id = '{c}' AND seq = 3"],
    "delete the whole chain": ["DELETE FROM audit_events WHERE clinic_id = '{c}'"],
    "truncate": ["TRUNCATE audit_events"],
}


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_each_tampering_breaks_verify_with_and_without_checkpoints(
        box: Container, world: dict[str, object], name: str) -> None:
    target, other = world["target"], world["other"]
    as_owner(box, *(s.format(c=target, o=other) for s in TAMPERINGS[name]))
    files = _files(box)
    bare = _verify(box, target)  # type: ignore[arg-type]
    assert not bare.ok, (name, bare)
    with_files = _verify(box, target, checkpoints=files)  # type: ignore[arg-type]
    assert not with_files.ok, (name, with_files)
    assert with_files.broken_at is not None


@pytest.mark.parametrize("unkeyed", [True, False], ids=["public-sha256", "wrong-key"])
def test_a_rewrite_rehashed_without_the_key_is_detected(
        box: Container, world: dict[str, object], unkeyed: bool) -> None:
    """The review's attack: edit an event, recompute every hash from there to the head with
    the project's public encoding (SHA-256, no key), or with a key of one's own."""
    target = world["target"]
    attacker = make_keyring()  # another key, with the same id
    as_owner(box, EDIT.format(c=target))
    as_owner(box, *_rehash(box, target, attacker, from_seq=3, unkeyed=unkeyed))  # type: ignore[arg-type]
    report = _verify(box, target)  # type: ignore[arg-type]
    assert not report.ok
    assert report.broken_at == 3
    assert ("not sealed with an audit key" if unkeyed else "edited") in (report.reason or "")
    assert not _verify(box, target, checkpoints=_files(box)).ok  # type: ignore[arg-type]


def test_a_superuser_with_the_audit_key_is_caught_by_the_checkpoint_only(
        box: Container, world: dict[str, object]) -> None:
    """What the trail cannot prove: someone holding both the database and the audit key
    rewrites a consistent chain. Only a checkpoint kept out of their reach names it."""
    target = world["target"]
    as_owner(box, EDIT.format(c=target))
    as_owner(box, *_rehash(box, target, box.keyring, from_seq=3))  # type: ignore[arg-type]
    as_owner(box, "DELETE FROM audit_events WHERE action = 'VERIFY' "  # the in-database one
                  "AND resource_type = 'audit_checkpoint'")
    assert _verify(box, target).ok  # type: ignore[arg-type]
    caught = _verify(box, target, checkpoints=_files(box))  # type: ignore[arg-type]
    assert not caught.ok
    assert "signed checkpoint" in (caught.reason or "")


def test_the_residual_window_after_the_last_checkpoint(
        box: Container, world: dict[str, object]) -> None:
    """Events sealed after the newest checkpoint can be deleted from the tail unnoticed
    (docs/audit.md: at most one checkpoint interval); one event further back cannot."""
    target, head = world["target"], world["head"]
    files = _files(box)
    checkpointed = max(c.seq for c in files if c.clinic_id == target)
    assert head > checkpointed  # the world sealed one patient after its checkpoint
    as_owner(box, f"DELETE FROM audit_events WHERE clinic_id = '{target}' "
                  f"AND seq > {checkpointed}")
    assert _verify(box, target).ok  # type: ignore[arg-type]
    assert _verify(box, target, checkpoints=files).ok  # type: ignore[arg-type]
    as_owner(box, f"DELETE FROM audit_events WHERE clinic_id = '{target}' "
                  f"AND seq = {checkpointed}")
    bare = _verify(box, target)  # type: ignore[arg-type]
    assert not bare.ok  # the head recorded in the system chain is gone
    assert "recorded in the system chain" in (bare.reason or "")
    assert not _verify(box, target, checkpoints=files).ok  # type: ignore[arg-type]


def test_rotation_keeps_old_events_verifiable(box: Container, world: dict[str, object]) -> None:
    target = world["target"]
    old = box.keyring
    rotated = KeyRing(keys=old.keys, active_id=old.active_id,
                      blind_index_key=old.blind_index_key,
                      audit_keys={**old.audit_keys, "a2": b"\x07" * 32}, active_audit_id="a2")
    patients.register_patient(box.uow(target, ME), PatientCreate(full_name="Chave nova"))  # type: ignore[arg-type]
    seal_pending(box.database, rotated, SYSTEM)
    with service_session(box.database, SYSTEM.id) as s:
        ids = s.execute(text("SELECT DISTINCT key_id FROM audit_events WHERE clinic_id = :c"),
                        {"c": target}).scalars().all()
    assert set(ids) == {"a1", "a2"}
    assert _verify(box, target, rotated, _files(box)).ok  # type: ignore[arg-type]
    forgotten = KeyRing(keys=old.keys, active_id=old.active_id,
                        blind_index_key=old.blind_index_key, audit_keys={"a2": b"\x07" * 32})
    gone = _verify(box, target, forgotten)  # type: ignore[arg-type]
    assert "'a1', which is not in the key ring" in (gone.reason or "")


def test_a_forged_or_altered_checkpoint_is_refused(box: Container,
                                                   world: dict[str, object]) -> None:
    import dataclasses  # noqa: PLC0415

    target = world["target"]
    files = [c for c in _files(box) if c.clinic_id == target]
    forged = [dataclasses.replace(c, hash="00" * 32) for c in files]
    report = _verify(box, target, checkpoints=forged)  # type: ignore[arg-type]
    assert "signature invalid" in (report.reason or "")


def test_verify_says_where_the_erasure_and_consent_ledgers_break(
        box: Container, world: dict[str, object]) -> None:
    """The owner edits a consent row (the guards off): its chain names it."""
    from neonpro.domain.schemas.consent import ConsentCreate  # noqa: PLC0415
    from neonpro.services import consents  # noqa: PLC0415

    target = world["target"]
    with box.uow(target, ME) as tx:  # type: ignore[arg-type]
        pid = tx.patients.list().items[0].id
    consents.grant_consent(box.uow(target, ME), ConsentCreate(  # type: ignore[arg-type]
        patient_id=pid, purpose="research", terms_version="v1", terms_hash="d" * 64,
        collection_method="written"))
    seal_pending(box.database, box.keyring, SYSTEM)
    as_owner(box, f"UPDATE consent_records SET status = 'revoked', revoked_at = now() "
                  f"WHERE clinic_id = '{target}'")
    reports = {r.chain: r for r in verify_chains(box.database, SYSTEM, box.keyring, target)  # type: ignore[arg-type]
               if r.clinic_id == target}
    assert not reports["consent_records"].ok
    assert reports["consent_records"].broken_at == 1
    assert reports["audit_events"].ok
