from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from neonpro.adapters.crypto import (
    BlindIndexer,
    DecryptionError,
    FieldCipher,
    KeyConfigError,
    KeyRing,
    generate_key_file,
    load_keyring,
)
from neonpro.adapters.crypto.loading import DEV_KEYS_ANNOUNCED_ENV
from neonpro.config import Environment, Settings

ROW = uuid.UUID("0b6f0c5e-3a52-4f7e-9d3c-1f2e3d4c5b6a")
CPF = "52998224725"


def key(n: int) -> bytes:
    return bytes([n]) * 32


def ring(*ids: str, active: str | None = None, bik: int = 200) -> KeyRing:
    ids = ids or ("k1",)
    return KeyRing(
        keys={kid: key(i + 1) for i, kid in enumerate(ids)},
        active_id=active or ids[-1],
        blind_index_key=key(bik),
    )


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "NEONPRO_KEY_FILE",
        "NEONPRO_ENCRYPTION_KEYS",
        "NEONPRO_ACTIVE_KEY_ID",
        "NEONPRO_BLIND_INDEX_KEY",
        "NEONPRO_AUDIT_KEYS",
        "NEONPRO_ACTIVE_AUDIT_KEY_ID",
        "NEONPRO_ENVIRONMENT",
    ):
        monkeypatch.delenv(name, raising=False)


def settings(tmp_path: Path, environment: Environment, **kw: object) -> Settings:
    if environment is Environment.PRODUCTION:
        kw.setdefault("database_url", "postgresql://db.invalid/neonpro")
        kw.setdefault("app_database_url", "postgresql://app@db.invalid/neonpro")
        kw.setdefault("service_database_url", "postgresql://service@db.invalid/neonpro")
    return Settings(
        _env_file=None,
        environment=environment,
        embedded_dir=tmp_path / "x",
        **kw,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------ FieldCipher


def encrypt(cipher: FieldCipher, value: str = CPF, **where: object) -> bytes:
    args: dict[str, object] = {"table": "patients", "column": "cpf", "row_id": ROW, **where}
    return cipher.encrypt(value, **args)  # type: ignore[arg-type]


def decrypt(cipher: FieldCipher, blob: bytes, **where: object) -> str:
    args: dict[str, object] = {"table": "patients", "column": "cpf", "row_id": ROW, **where}
    return cipher.decrypt(blob, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [CPF, "", "Conceição Ñandú 🦷", "x" * 10_000])
def test_round_trip(value: str) -> None:
    cipher = FieldCipher(ring())
    blob = encrypt(cipher, value)
    assert decrypt(cipher, blob) == value
    assert value.encode() not in blob or value == ""


def test_blob_layout() -> None:
    blob = encrypt(FieldCipher(ring("k1")))
    assert blob[0] == 1
    assert blob[1] == 2
    assert blob[2:4] == b"k1"
    assert len(blob) == 1 + 1 + 2 + 12 + len(CPF) + 16


def test_fresh_nonce_each_time() -> None:
    cipher = FieldCipher(ring())
    first, second = encrypt(cipher), encrypt(cipher)
    assert first != second
    assert first[4:16] != second[4:16]
    assert decrypt(cipher, first) == decrypt(cipher, second) == CPF


@pytest.mark.parametrize(
    "where",
    [
        {"row_id": uuid.UUID("0b6f0c5e-3a52-4f7e-9d3c-1f2e3d4c5b6b")},
        {"column": "cns"},
        {"table": "professionals"},
        # the encoding is unambiguous: moving a character across the separator fails too
        {"table": "patientsc", "column": "pf"},
    ],
)
def test_value_moved_elsewhere_fails(where: dict[str, object]) -> None:
    cipher = FieldCipher(ring())
    blob = encrypt(cipher)
    with pytest.raises(DecryptionError) as info:
        decrypt(cipher, blob, **where)
    assert CPF not in str(info.value)
    assert "k1" in str(info.value)


def test_every_flipped_bit_fails() -> None:
    cipher = FieldCipher(ring())
    blob = encrypt(cipher)
    for i in range(len(blob)):
        for bit in range(8):
            tampered = bytearray(blob)
            tampered[i] ^= 1 << bit
            with pytest.raises(DecryptionError) as info:
                decrypt(cipher, bytes(tampered))
            assert CPF not in str(info.value)


@pytest.mark.parametrize("cut", [0, 1, 3, 4, 15, 16, 31])
def test_truncated_blob_fails(cut: int) -> None:
    cipher = FieldCipher(ring())
    with pytest.raises(DecryptionError):
        decrypt(cipher, encrypt(cipher)[:cut])


def test_unknown_key_id_is_named_but_not_the_value() -> None:
    blob = encrypt(FieldCipher(ring("k9")))
    with pytest.raises(DecryptionError) as info:
        decrypt(FieldCipher(ring("k1", "k2")), blob)
    message = str(info.value)
    assert "k9" in message
    assert "patients.cpf" in message
    assert CPF not in message
    assert info.value.__cause__ is None


def test_same_key_id_with_another_key_fails() -> None:
    blob = encrypt(FieldCipher(ring("k1")))
    other = KeyRing(keys={"k1": key(77)}, active_id="k1", blind_index_key=key(200))
    with pytest.raises(DecryptionError, match="k1"):
        decrypt(FieldCipher(other), blob)


def test_rotation_reads_old_keys_and_writes_the_active_one() -> None:
    old = FieldCipher(ring("k1"))
    written_before = encrypt(old)
    assert FieldCipher.key_id_of(written_before) == "k1"

    rotated = ring("k1").with_new_active("k2", key(2))
    assert rotated.active_id == "k2"
    assert set(rotated.keys) == {"k1", "k2"}
    cipher = FieldCipher(rotated)
    assert cipher.active_key_id == "k2"
    assert decrypt(cipher, written_before) == CPF
    written_after = encrypt(cipher)
    assert FieldCipher.key_id_of(written_after) == "k2"
    assert decrypt(cipher, written_after) == CPF
    # the old ring cannot read values written under the new key
    with pytest.raises(DecryptionError, match="k2"):
        decrypt(old, written_after)


def test_with_new_active_refuses_to_reuse_an_id_for_another_key() -> None:
    with pytest.raises(KeyConfigError, match="k1"):
        ring("k1").with_new_active("k1", key(9))
    assert ring("k1", "k2", active="k1").with_new_active("k2", key(2)).active_id == "k2"


def test_key_id_of_rejects_garbage() -> None:
    with pytest.raises(DecryptionError):
        FieldCipher.key_id_of(b"")
    with pytest.raises(DecryptionError):
        FieldCipher.key_id_of(b"\x02\x02k1")
    with pytest.raises(DecryptionError):
        FieldCipher.key_id_of(b"\x01\x05k1")


def test_optional_helpers_pass_none_through() -> None:
    cipher = FieldCipher(ring())
    where = {"table": "patients", "column": "email", "row_id": ROW}
    assert cipher.encrypt_optional(None, **where) is None  # type: ignore[arg-type]
    assert cipher.decrypt_optional(None, **where) is None  # type: ignore[arg-type]
    blob = cipher.encrypt_optional("a@b.com.br", **where)  # type: ignore[arg-type]
    assert blob is not None
    assert cipher.decrypt_optional(blob, **where) == "a@b.com.br"  # type: ignore[arg-type]


def test_decrypt_accepts_memoryview() -> None:
    cipher = FieldCipher(ring())
    assert decrypt(cipher, memoryview(encrypt(cipher))) == CPF  # type: ignore[arg-type]


def test_invalid_unicode_is_refused_without_echoing_it() -> None:
    cipher = FieldCipher(ring())
    with pytest.raises(ValueError, match=r"patients\.cpf") as info:
        encrypt(cipher, "secret\ud800")
    assert "secret" not in str(info.value)


# ------------------------------------------------------------------ BlindIndexer


def test_blind_index_is_deterministic_and_kind_separated() -> None:
    indexer = BlindIndexer(ring())
    first = indexer.index("cpf", CPF)
    assert len(first) == 32
    assert first == indexer.index("cpf", CPF)
    assert first == BlindIndexer(ring()).index("cpf", CPF)
    assert first != indexer.index("cns", CPF)
    assert first != indexer.index("cpf", "52998224724")


def test_blind_index_depends_on_the_key() -> None:
    assert BlindIndexer(ring(bik=200)).index("cpf", CPF) != BlindIndexer(ring(bik=201)).index(
        "cpf", CPF
    )


def test_blind_index_does_not_depend_on_the_encryption_keys() -> None:
    # rotating AES keys must not invalidate every stored index
    assert BlindIndexer(ring("k1")).index("cpf", CPF) == BlindIndexer(
        ring("k1").with_new_active("k2", key(2))
    ).index("cpf", CPF)


@pytest.mark.parametrize("kind", ["", "c\x00pf", "patient_ref"])
def test_blind_index_refuses_ambiguous_kinds(kind: str) -> None:
    with pytest.raises(ValueError, match="kind"):
        BlindIndexer(ring()).index(kind, CPF)


def test_patient_ref_is_keyed_and_deterministic() -> None:
    indexer = BlindIndexer(ring())
    ref = indexer.patient_ref(ROW)
    assert len(ref) == 32
    assert ref == indexer.patient_ref(ROW)
    assert ref != indexer.patient_ref(uuid.uuid4())
    assert ref != BlindIndexer(ring(bik=201)).patient_ref(ROW)
    assert ROW.bytes not in ref


# ------------------------------------------------------------------ KeyRing


def test_keyring_repr_shows_no_key_material() -> None:
    keys = {"k1": os.urandom(32), "k2": os.urandom(32)}
    bik = os.urandom(32)
    kr = KeyRing(keys=keys, active_id="k2", blind_index_key=bik)
    for text in (repr(kr), str(kr), f"{kr}"):
        assert "k1" in text
        assert "k2" in text
        for raw in (*keys.values(), bik):
            assert b64(raw) not in text
            assert base64.urlsafe_b64encode(raw).decode() not in text
            assert raw.hex() not in text
            assert repr(raw) not in text


@pytest.mark.parametrize(
    ("keys", "active", "bik", "match"),
    [
        ({}, "k1", key(200), "at least one"),
        ({"k1": b"short"}, "k1", key(200), "32 bytes"),
        ({"k 1": key(1)}, "k 1", key(200), "invalid"),
        ({"k1\n": key(1)}, "k1\n", key(200), "invalid"),
        ({"k" * 33: key(1)}, "k" * 33, key(200), "invalid"),
        ({"k1": key(1)}, "k2", key(200), "active key id"),
        ({"k1": key(1)}, "k1", b"short", "blind-index key"),
        ({"k1": key(1)}, "k1", key(1), "differ"),
    ],
)
def test_keyring_validation(keys: dict[str, bytes], active: str, bik: bytes, match: str) -> None:
    with pytest.raises(KeyConfigError, match=match):
        KeyRing(keys=keys, active_id=active, blind_index_key=bik)


def test_keyring_keys_are_a_private_copy() -> None:
    keys = {"k1": key(1)}
    kr = KeyRing(keys=keys, active_id="k1", blind_index_key=key(200))
    keys["k1"] = key(9)
    assert kr.keys["k1"] == key(1)
    with pytest.raises(TypeError):
        kr.keys["k2"] = key(2)  # type: ignore[index]


# ------------------------------------------------------------------ load_keyring


def write_key_file(path: Path, mode: int, **overrides: object) -> dict[str, object]:
    document: dict[str, object] = {
        "active": "k2",
        "keys": {"k1": b64(key(1)), "k2": b64(key(2))},
        "blind_index_key": b64(key(200)),
        **overrides,
    }
    path.write_text(json.dumps(document))
    path.chmod(mode)
    return document


def test_load_from_key_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    write_key_file(path, 0o600)
    kr = load_keyring(settings(tmp_path, Environment.PRODUCTION, key_file=path))
    assert kr.active_id == "k2"
    assert dict(kr.keys) == {"k1": key(1), "k2": key(2)}
    assert kr.blind_index_key == key(200)
    assert kr.generated is False
    assert not (tmp_path / "dev-keys.json").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "keys.json"
    write_key_file(path, mode)
    with pytest.raises(KeyConfigError, match="chmod 600") as info:
        load_keyring(settings(tmp_path, Environment.PRODUCTION, key_file=path))
    assert b64(key(1)) not in str(info.value)


def test_missing_key_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="does not exist"):
        load_keyring(settings(tmp_path, Environment.DEVELOPMENT, key_file=tmp_path / "nope"))


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"active": "k3"}, "active key id"),
        ({"keys": {}}, '"keys"'),
        ({"keys": {"k1": "!!not base64!!"}, "active": "k1"}, "not valid base64"),
        ({"keys": {"k1": b64(b"0123456789abcdef")}, "active": "k1"}, "32 bytes"),
        ({"blind_index_key": 42}, "base64 string"),
    ],
)
def test_bad_key_file_is_refused_without_echoing_keys(
    tmp_path: Path, overrides: dict[str, object], match: str
) -> None:
    path = tmp_path / "keys.json"
    write_key_file(path, 0o600, **overrides)
    with pytest.raises(KeyConfigError, match=match) as info:
        load_keyring(settings(tmp_path, Environment.DEVELOPMENT, key_file=path))
    message = str(info.value)
    for secret in (b64(key(1)), b64(key(2)), b64(key(200)), "not base64", "0123456789abcdef"):
        assert secret not in message


def test_key_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("k1=" + b64(key(1)))
    path.chmod(0o600)
    with pytest.raises(KeyConfigError, match="not valid JSON") as info:
        load_keyring(settings(tmp_path, Environment.DEVELOPMENT, key_file=path))
    assert b64(key(1)) not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_load_from_environment_strings(tmp_path: Path) -> None:
    env = f"k1:{b64(key(1))}, k2:{b64(key(2))}"
    kr = load_keyring(
        settings(
            tmp_path,
            Environment.PRODUCTION,
            encryption_keys=env,
            blind_index_key=b64(key(200)),
            audit_keys=f"a1:{b64(key(201))},a2:{b64(key(202))}",
        )
    )
    assert kr.active_id == "k2"  # the last listed
    assert kr.active_audit_key == ("a2", key(202))  # the newest numbered
    assert dict(kr.audit_keys) == {"a1": key(201), "a2": key(202)}
    assert dict(kr.keys) == {"k1": key(1), "k2": key(2)}
    assert kr.blind_index_key == key(200)
    assert kr.generated is False

    explicit = load_keyring(
        settings(
            tmp_path,
            Environment.PRODUCTION,
            encryption_keys=env,
            blind_index_key=b64(key(200)),
            active_key_id="k1",
            audit_keys=f"a1:{b64(key(201))}",
        )
    )
    assert explicit.active_id == "k1"


def test_environment_variables_are_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEONPRO_ENCRYPTION_KEYS", f"a:{b64(key(1))}")
    monkeypatch.setenv("NEONPRO_BLIND_INDEX_KEY", base64.urlsafe_b64encode(key(250)).decode())
    with pytest.raises(KeyConfigError, match="NEONPRO_AUDIT_KEYS"):
        load_keyring(settings(tmp_path, Environment.PRODUCTION))  # the trail needs its key
    monkeypatch.setenv("NEONPRO_AUDIT_KEYS", f"x:{b64(key(251))},y:{b64(key(252))}")
    monkeypatch.setenv("NEONPRO_ACTIVE_AUDIT_KEY_ID", "x")
    kr = load_keyring(settings(tmp_path, Environment.PRODUCTION))
    assert kr.active_id == "a"
    assert kr.blind_index_key == key(250)
    assert kr.active_audit_key == ("x", key(251))


def test_audit_keys_rotate_and_stay_apart_from_the_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    generate_key_file(path)
    ring = load_keyring(settings(tmp_path, Environment.PRODUCTION, key_file=path))
    assert ring.active_audit_id == "a1"
    doc = json.loads(path.read_text())
    doc["audit_keys"]["a2"] = b64(key(90))
    doc["active_audit_key"] = "a2"
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    rotated = load_keyring(settings(tmp_path, Environment.PRODUCTION, key_file=path))
    assert rotated.active_audit_key == ("a2", key(90))
    assert rotated.audit_keys["a1"] == ring.audit_keys["a1"]  # old events still verify
    with pytest.raises(KeyConfigError, match="must differ"):
        KeyRing(keys={"k1": key(1)}, active_id="k1", blind_index_key=key(2),
                audit_keys={"a1": key(1)})
    with pytest.raises(KeyConfigError, match="not among"):
        KeyRing(keys={"k1": key(1)}, active_id="k1", blind_index_key=key(2),
                audit_keys={"a1": key(3)}, active_audit_id="a9")
    legacy = KeyRing(keys={"k1": key(1)}, active_id="k1", blind_index_key=key(2),
                     audit_key=key(4))
    assert legacy.active_audit_key == ("a1", key(4))  # a key file of before key ids


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"encryption_keys": "k1"}, "kid1:<base64>"),
        ({"encryption_keys": f"k1:{b64(key(1))},k1:{b64(key(2))}"}, "twice"),
        ({"encryption_keys": "k1:c2hvcnQ="}, "32 bytes"),
        ({"encryption_keys": ","}, "empty"),
        ({"encryption_keys": f"k1:{b64(key(1))}", "active_key_id": "k7"}, "k7"),
    ],
)
def test_bad_environment_strings_are_refused(
    tmp_path: Path, kw: dict[str, object], match: str
) -> None:
    with pytest.raises(KeyConfigError, match=match) as info:
        load_keyring(
            settings(tmp_path, Environment.DEVELOPMENT, blind_index_key=b64(key(200)), **kw)
        )
    assert b64(key(1)) not in str(info.value)
    assert "c2hvcnQ=" not in str(info.value)


def test_production_without_keys_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="production refuses to start") as info:
        load_keyring(settings(tmp_path, Environment.PRODUCTION))
    assert "NEONPRO_KEY_FILE" in str(info.value)
    assert not (tmp_path / "dev-keys.json").exists()


def test_production_ignores_an_existing_dev_key_file(tmp_path: Path) -> None:
    load_keyring(settings(tmp_path, Environment.DEVELOPMENT))
    with pytest.raises(KeyConfigError, match="production refuses to start"):
        load_keyring(settings(tmp_path, Environment.PRODUCTION))


@pytest.mark.parametrize(
    "kw",
    [
        {"encryption_keys": f"k1:{b64(key(1))}"},
        {"blind_index_key": b64(key(200))},
        {"active_key_id": "k1"},
    ],
)
def test_partial_configuration_never_falls_back_to_dev_keys(
    tmp_path: Path, kw: dict[str, object]
) -> None:
    with pytest.raises(KeyConfigError, match="incomplete"):
        load_keyring(settings(tmp_path, Environment.DEVELOPMENT, **kw))
    assert not (tmp_path / "dev-keys.json").exists()


@pytest.mark.parametrize("environment", [Environment.DEVELOPMENT, Environment.TEST])
def test_development_generates_a_key_file_once_and_reuses_it(
    tmp_path: Path, environment: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DEV_KEYS_ANNOUNCED_ENV, raising=False)
    path = tmp_path / "dev-keys.json"
    with capture_logs() as logs:
        first = load_keyring(settings(tmp_path, environment))
    assert first.generated is True
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [e["event"] for e in logs] == ["dev_keys_in_use"]
    assert logs[0]["log_level"] == "warning"
    assert logs[0]["path"] == str(path)
    assert "never use them for real patient data" in logs[0]["detail"]
    for raw in (*first.keys.values(), first.blind_index_key):
        assert b64(raw) not in str(logs)

    blob = FieldCipher(first).encrypt(CPF, table="patients", column="cpf", row_id=ROW)
    with capture_logs() as logs:
        second = load_keyring(settings(tmp_path, environment))
    assert logs == []  # said once a run (issue 20), not once a container
    assert os.environ[DEV_KEYS_ANNOUNCED_ENV] == str(path)  # and not again in its workers
    assert second.generated is True
    assert dict(second.keys) == dict(first.keys)
    assert second.active_id == first.active_id
    assert second.blind_index_key == first.blind_index_key
    # yesterday's data still decrypts today
    assert FieldCipher(second).decrypt(blob, table="patients", column="cpf", row_id=ROW) == CPF


def test_dev_key_file_made_world_readable_is_refused(tmp_path: Path) -> None:
    load_keyring(settings(tmp_path, Environment.DEVELOPMENT))
    (tmp_path / "dev-keys.json").chmod(0o644)
    with pytest.raises(KeyConfigError, match="chmod 600"):
        load_keyring(settings(tmp_path, Environment.DEVELOPMENT))


def test_generate_key_file_creates_parents_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "keys.json"
    generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    with pytest.raises(FileExistsError):
        generate_key_file(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == ["keys.json"]  # no temp left
    kr = load_keyring(settings(tmp_path, Environment.PRODUCTION, key_file=path))
    assert kr.generated is False
    assert list(kr.keys) == [kr.active_id]


def test_two_generated_files_hold_different_keys(tmp_path: Path) -> None:
    generate_key_file(tmp_path / "one.json")
    generate_key_file(tmp_path / "two.json")
    one = load_keyring(settings(tmp_path, Environment.TEST, key_file=tmp_path / "one.json"))
    two = load_keyring(settings(tmp_path, Environment.TEST, key_file=tmp_path / "two.json"))
    assert dict(one.keys) != dict(two.keys)
    assert one.blind_index_key != two.blind_index_key
