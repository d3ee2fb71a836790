"""Key upkeep's rules over in-memory ports: what rotation rewrites and what it leaves (a
value changed meanwhile, an unknown key), batching, when a key may leave the key file, and
when a new blind-index key is promoted."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from neonpro.domain.ports_keys import key_header
from neonpro.domain.vocabulary import AuditAction
from neonpro.services import keys as svc
from tests.unit.fakes_keys import FakeCipher, FakeIndexer, FakeKeys, FakeRing

K1 = FakeRing({"k1": b"1" * 32}, "k1")
K2 = FakeRing({"k1": b"1" * 32, "k2": b"2" * 32}, "k2")
CLINIC = uuid.uuid4()
KEY_FILE = Path("/keys/neonpro-keys.json")


def _ref(n: int) -> tuple[uuid.UUID, uuid.UUID]:
    return (CLINIC, uuid.UUID(int=n + 1))


def _seeded(patients: int = 5, appointments: int = 2) -> FakeKeys:
    """Every value under k1; a box whose active key is k2."""
    keys = FakeKeys(K2)
    old = FakeCipher(K1)
    for n in range(patients):
        keys.key_store.tables["patients"][_ref(n)] = {
            "cpf_encrypted": old.encrypt(f"cpf{n}", table="", column="", row_id=_ref(n)[1]),
            "cns_encrypted": None if n % 2 else old.encrypt(
                f"cns{n}", table="", column="", row_id=_ref(n)[1]),
            "cpf_blind_index": FakeIndexer(b"old").index("cpf", f"cpf{n}"),
            "cns_blind_index": None}
    for n in range(appointments):
        keys.key_store.tables["appointments"][_ref(n)] = {
            "notes_encrypted": old.encrypt("nota", table="", column="", row_id=_ref(n)[1])}
    return keys


def test_rotation_rewrites_every_old_value_and_audits_each_column() -> None:
    keys = _seeded()
    assert svc.key_status(keys).by_key == {"k1": 10, "k2": 0}
    report = svc.rotate(keys, batch_size=2)
    assert (report.rotated, report.skipped, report.complete) == (10, 0, True)
    assert report.status.by_key == {"k1": 0, "k2": 10}
    assert report.batches == 3 + 1  # 5 patients by 2, then 2 appointments in one
    values = {c["column"]: c["values"] for c in (e["details"] for e in keys.audit)}
    assert values == {"cpf_encrypted": 5, "cns_encrypted": 3, "notes_encrypted": 2}
    assert {e["action"] for e in keys.audit} == {AuditAction.KEY_ROTATION}
    assert keys.cipher.decrypt(keys.key_store.tables["patients"][_ref(3)]["cpf_encrypted"]
                               or b"", table="", column="", row_id=_ref(3)[1]) == "cpf3"
    again = svc.rotate(keys)
    assert (again.rotated, again.batches) == (0, 0)


def test_a_value_changed_between_read_and_write_is_left_as_it_is() -> None:
    keys = _seeded(patients=3, appointments=0)
    edited = key_header("k1") + b"edited"

    def edit(table: str, refs: object) -> None:
        keys.key_store.tables["patients"][_ref(1)]["cpf_encrypted"] = edited

    report = svc.rotate(keys, on_selected=edit)
    assert keys.key_store.tables["patients"][_ref(1)]["cpf_encrypted"] == edited
    cpf = next(c for c in report.columns if c.column == "cpf_encrypted")
    assert (cpf.rotated, cpf.skipped) == (2, 1)
    assert svc.rotate(keys).rotated == 1  # the next run picks it up


def test_values_under_a_key_the_ring_lacks_stop_rotation_before_any_change() -> None:
    keys = _seeded()
    keys.keyring = FakeRing({"k2": b"2" * 32}, "k2")
    with pytest.raises(svc.KeyRotationError, match=r"patients.cpf_encrypted \(key id k1\)"):
        svc.rotate(keys)
    assert svc.key_status(FakeKeys(K2, keys.key_store)).by_key == {"k1": 10, "k2": 0}
    assert keys.audit == []


def test_max_batches_stops_and_the_next_run_continues() -> None:
    keys = _seeded()
    first = svc.rotate(keys, batch_size=2, max_batches=1)
    assert (first.complete, first.batches, first.status.remaining) == (False, 1, 7)
    assert svc.rotate(keys, batch_size=2).status.remaining == 0
    with pytest.raises(ValueError, match="batch size"):
        svc.rotate(keys, batch_size=svc.MAX_BATCH + 1)


def test_a_key_leaves_the_file_only_when_unused_and_not_active() -> None:
    keys = _seeded()
    with pytest.raises(svc.KeyRotationError, match="is the active key"):
        svc.remove_key(keys, KEY_FILE, "k2")
    with pytest.raises(svc.KeyRotationError, match="10 value"):
        svc.remove_key(keys, KEY_FILE, "k1")
    assert keys.file_edits == []
    svc.rotate(keys)
    svc.remove_key(keys, KEY_FILE, "k1")
    assert keys.file_edits == [("remove", str(KEY_FILE), "k1")]


def test_reindexing_rewrites_the_indexes_and_promotes_only_a_clean_run() -> None:
    keys = _seeded(patients=4, appointments=0)
    report = svc.reindex_blind(keys, b"new", batch_size=3)
    assert (report.updated, report.conflicts, report.complete) == (4, [], True)
    row = keys.key_store.tables["patients"][_ref(2)]
    assert row["cpf_blind_index"] == FakeIndexer(b"new").index("cpf", "cpf2")
    assert row["cns_blind_index"] == FakeIndexer(b"new").index("cns", "cns2")
    assert keys.audit[-1]["details"]["values"] == 4
    assert not svc.promote_blind_key(keys, report, b"new", None)  # keys from the environment
    assert svc.promote_blind_key(keys, report, b"new", KEY_FILE)
    assert keys.file_edits == [("promote", str(KEY_FILE))]


def test_a_conflict_keeps_the_old_blind_index_key() -> None:
    keys = _seeded(patients=2, appointments=0)
    # another patient of the clinic already holds patient 0's index under the new key
    keys.key_store.tables["patients"][_ref(9)] = {
        "cpf_encrypted": None, "cns_encrypted": None,
        "cpf_blind_index": FakeIndexer(b"new").index("cpf", "cpf0"), "cns_blind_index": None}
    report = svc.reindex_blind(keys, b"new")
    assert [(c.patient_id, c.other_patient_id) for c in report.conflicts] == [
        (_ref(0)[1], _ref(9)[1])]
    assert report.orphaned == 1  # an index without its ciphertext is left alone
    assert not svc.promote_blind_key(keys, report, b"new", KEY_FILE)
    assert keys.file_edits == []
