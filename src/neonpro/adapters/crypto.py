"""Field encryption (AES-256-GCM) and blind indexes (HMAC-SHA256) for personal data.

Keys never live in the database. ``load_keyring`` reads them from a key file or from the
environment (see ``neonpro.config.Settings``); development and test fall back to a
generated key file next to the embedded database, production refuses to start without
real keys.

Encrypted value layout (bytes)::

    version (1) | key-id length (1) | key id (ASCII) | nonce (12) | ciphertext + tag (16)

The associated data binds each value to its place: the header above (so the key id is
authenticated), then ``b"neonpro/v1\\x00" + table + b"\\x00" + column + b"\\x00"`` and the
16 bytes of the row id. A value copied to another row, column or table does not decrypt.

No message or ``repr`` here ever carries key material or a plaintext value.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import json
import os
import re
import stat
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from neonpro.config import Environment

if TYPE_CHECKING:
    from neonpro.config import Settings

__all__ = [
    "BlindIndexer",
    "DecryptionError",
    "FieldCipher",
    "KeyConfigError",
    "KeyRing",
    "generate_key_file",
    "load_keyring",
]

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
BLOB_VERSION: Final = 1
DEV_KEY_FILE_NAME: Final = "dev-keys.json"

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
LEGACY_AUDIT_KEY_ID: Final = "a1"

DERIVED_AUDIT_KEY_ID: Final = "derived"
_NUMBERED_AUDIT_KEY_ID: Final = re.compile(r"a([0-9]{1,9})")


def _audit_key_order(key_id: str) -> tuple[int, str]:
    """``a2`` after ``a1``, ``a10`` after ``a9``: the newest numbered id is the default."""
    m = _NUMBERED_AUDIT_KEY_ID.fullmatch(key_id)
    return (int(m.group(1)) if m else 0, key_id)
_AAD_LABEL: Final = b"neonpro/v1\x00"
_PATIENT_REF_KIND: Final = "patient_ref"
_CONTEXT_CACHE_MAX: Final = 4096
_DEV_WARNING: Final = "generated development keys: never use them for real patient data"
_URLSAFE_TO_STD: Final = str.maketrans("-_", "+/")


# Adapter-level, not a DomainError: the process cannot run at all (keys missing or malformed,
# found while building the container, before any use case), so no HTTP answer describes it;
# the CLI answers it in one line (cli/_common.explain); the API cannot start without keys.
class KeyConfigError(RuntimeError):
    """Keys are missing or malformed; the message says what to set, never the key."""


# Adapter-level, not a DomainError: stored data or the key ring is broken, never the
# caller's doing; the API answers a generic 500 (problems.py) and alerts the operators.
class DecryptionError(RuntimeError):
    """A value does not decrypt; the message names table, column and key id, never the value."""


def _valid_key_id(key_id: object) -> bool:
    return isinstance(key_id, str) and _KEY_ID.fullmatch(key_id) is not None


@dataclass(frozen=True)
class KeyRing:
    """Encryption keys by id, the id that encrypts new values, and the blind-index key."""

    keys: Mapping[str, bytes] = field(repr=False)
    active_id: str
    blind_index_key: bytes = field(repr=False)
    generated: bool = False
    # A key file's single ``audit_key`` of before key ids (it becomes audit key ``a1``).
    audit_key: bytes | None = field(default=None, repr=False)
    # Audit keys by id (HMAC of every audit event and erasure-ledger entry, checkpoints and
    # retention cuts): separate from the blind-index key so a reindex does not orphan them.
    # ``active_audit_id`` seals new events; the others only verify what they sealed
    # (rotation). Without any, one is derived from the blind-index key (id ``derived``).
    audit_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    active_audit_id: str | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyConfigError("the key ring needs at least one encryption key")
        for key_id, key in self.keys.items():
            if not _valid_key_id(key_id):
                raise KeyConfigError(
                    f"key id {key_id!r} is invalid: use 1-32 characters of A-Z, a-z, 0-9, _ or -"
                )
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise KeyConfigError(
                    f"encryption key {key_id!r} must be {KEY_BYTES} bytes (AES-256)"
                )
        if self.active_id not in self.keys:
            raise KeyConfigError(
                f"active key id {self.active_id!r} is not among the key ids {sorted(self.keys)}"
            )
        bik = self.blind_index_key
        if not isinstance(bik, bytes) or len(bik) != KEY_BYTES:
            raise KeyConfigError(f"the blind-index key must be {KEY_BYTES} bytes")
        if any(hmac.compare_digest(bik, key) for key in self.keys.values()):
            raise KeyConfigError("the blind-index key must differ from every encryption key")
        # a private, read-only copy: nobody can swap a key under a live FieldCipher
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))
        self._init_audit_keys()

    def _init_audit_keys(self) -> None:
        audit = dict(self.audit_keys)
        if self.audit_key is not None:
            audit.setdefault(LEGACY_AUDIT_KEY_ID, self.audit_key)
        if not audit:
            audit[DERIVED_AUDIT_KEY_ID] = self.legacy_audit_key
        for key_id, key in audit.items():
            if not _valid_key_id(key_id):
                raise KeyConfigError(f"audit key id {key_id!r} is invalid: use 1-32 characters "
                                     "of A-Z, a-z, 0-9, _ or -")
            if not isinstance(key, bytes) or len(key) != KEY_BYTES:
                raise KeyConfigError(f"audit key {key_id!r} must be {KEY_BYTES} bytes")
            if any(hmac.compare_digest(key, k) for k in (*self.keys.values(),
                                                         self.blind_index_key)):
                raise KeyConfigError(f"audit key {key_id!r} must differ from the encryption "
                                     "and blind-index keys")
        active = self.active_audit_id or max(audit, key=_audit_key_order)
        if active not in audit:
            raise KeyConfigError(f"active audit key id {active!r} is not among the audit key "
                                 f"ids {sorted(audit)}")
        object.__setattr__(self, "audit_keys", MappingProxyType(audit))
        object.__setattr__(self, "active_audit_id", active)

    @property
    def active_audit_key(self) -> tuple[str, bytes]:
        """The id and key that seal new audit events and sign new checkpoints."""
        assert self.active_audit_id is not None  # noqa: S101  (set in __post_init__)
        return self.active_audit_id, self.audit_keys[self.active_audit_id]

    @property
    def legacy_audit_key(self) -> bytes:
        """The key of signatures made before audit key ids (checkpoint files of format v1,
        retention cuts without a key id): the key file's ``audit_key``, else derived."""
        if self.audit_key is not None:
            return self.audit_key
        return hmac.new(self.blind_index_key, b"neonpro-audit-checkpoint-key-v1",
                        hashlib.sha256).digest()

    def __repr__(self) -> str:
        return (
            f"KeyRing(key_ids={sorted(self.keys)!r}, active_id={self.active_id!r}, "
            f"audit_key_ids={sorted(self.audit_keys)!r}, "
            f"active_audit_id={self.active_audit_id!r}, generated={self.generated!r})"
        )

    __str__ = __repr__

    def with_new_active(self, new_id: str, key: bytes) -> KeyRing:
        """A ring that also holds ``key`` as ``new_id`` and encrypts new values with it.

        Old keys stay, so values written under them still decrypt (rotation). Reusing an
        id for a different key is refused: it would make existing values undecryptable.
        """
        existing = self.keys.get(new_id)
        if existing is not None and not hmac.compare_digest(existing, key):
            raise KeyConfigError(f"key id {new_id!r} already holds a different key")
        return KeyRing(
            keys={**self.keys, new_id: key},
            active_id=new_id,
            blind_index_key=self.blind_index_key,
            generated=self.generated,
            audit_key=self.audit_key,
            audit_keys=self.audit_keys,
            active_audit_id=self.active_audit_id,
        )


# --------------------------------------------------------------------------- loading


def _b64_key(text: object, what: str) -> bytes:
    """Decode a base64 (standard or URL-safe) key; errors never echo the text."""
    if not isinstance(text, str):
        raise KeyConfigError(f"{what} must be a base64 string")
    try:
        raw = base64.b64decode(text.strip().translate(_URLSAFE_TO_STD), validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"{what} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyConfigError(
            f"{what} must decode to {KEY_BYTES} bytes, got {len(raw)}: "
            f"generate one with `openssl rand -base64 {KEY_BYTES}`"
        )
    return raw


def _read_key_file(path: Path, *, generated: bool = False) -> KeyRing:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyConfigError(f"NEONPRO_KEY_FILE {path} does not exist") from None
    except OSError as exc:
        raise KeyConfigError(f"cannot open key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())  # the opened file itself: no check-then-open race
        if not stat.S_ISREG(info.st_mode):
            raise KeyConfigError(f"key file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyConfigError(
                f"key file {path} is readable or writable by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}): run `chmod 600 {path}`"
            )
        content = handle.read()
    try:
        data: Any = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        # from None: a JSON error keeps the whole document on the exception object
        raise KeyConfigError(
            f"key file {path} is not valid JSON: expected "
            '{"active": "k1", "keys": {"k1": "<base64>"}, "blind_index_key": "<base64>"}'
        ) from None
    if not isinstance(data, dict):
        raise KeyConfigError(f"key file {path} must hold a JSON object")
    keys = data.get("keys")
    active = data.get("active")
    if not isinstance(keys, dict) or not keys:
        raise KeyConfigError(f'key file {path} needs "keys": {{"<key id>": "<base64>"}}')
    if not isinstance(active, str):
        raise KeyConfigError(f'key file {path} needs "active": "<key id>"')
    if "blind_index_key" not in data:
        raise KeyConfigError(f'key file {path} needs "blind_index_key": "<base64>"')
    return KeyRing(
        keys={
            str(kid): _b64_key(value, f"key {kid!r} in key file {path}")
            for kid, value in keys.items()
        },
        active_id=active,
        blind_index_key=_b64_key(data["blind_index_key"], f"blind_index_key in key file {path}"),
        generated=generated,
        audit_key=(_b64_key(data["audit_key"], f"audit_key in key file {path}")
                   if "audit_key" in data else None),
        audit_keys=_audit_keys_of(data, path),
        active_audit_id=_active_audit_of(data, path),
    )


def _audit_keys_of(data: dict[str, Any], path: Path) -> dict[str, bytes]:
    keys = data.get("audit_keys", {})
    if not isinstance(keys, dict):
        raise KeyConfigError(f'key file {path}: "audit_keys" must be {{"<id>": "<base64>"}}')
    return {str(kid): _b64_key(value, f"audit key {kid!r} in key file {path}")
            for kid, value in keys.items()}


def _active_audit_of(data: dict[str, Any], path: Path) -> str | None:
    active = data.get("active_audit_key")
    if active is not None and not isinstance(active, str):
        raise KeyConfigError(f'key file {path}: "active_audit_key" must be a key id')
    return active


def _key_list(text: str, variable: str) -> tuple[dict[str, bytes], str | None]:
    """``kid1:<base64>,kid2:<base64>`` -> keys by id, and the last id."""
    keys: dict[str, bytes] = {}
    last: str | None = None
    for raw_entry in text.split(","):
        entry = raw_entry.strip()
        if not entry:
            continue
        kid, sep, b64 = entry.partition(":")
        kid = kid.strip()
        if not sep or not _valid_key_id(kid):
            raise KeyConfigError(
                f"{variable} must look like 'kid1:<base64>,kid2:<base64>' with key "
                "ids of 1-32 characters A-Z, a-z, 0-9, _ or -"
            )
        if kid in keys:
            raise KeyConfigError(f"{variable} lists key id {kid!r} twice")
        keys[kid] = _b64_key(b64, f"key {kid!r} in {variable}")
        last = kid
    return keys, last


def _keyring_from_strings(
    encryption_keys: str, blind_index_key: str, active: str | None,
    audit_keys: str | None = None, active_audit: str | None = None,
) -> KeyRing:
    keys, last = _key_list(encryption_keys, "NEONPRO_ENCRYPTION_KEYS")
    if last is None:
        raise KeyConfigError("NEONPRO_ENCRYPTION_KEYS is empty: list 'kid1:<base64>'")
    active_id = active.strip() if active else last
    if active_id not in keys:
        raise KeyConfigError(
            f"NEONPRO_ACTIVE_KEY_ID {active_id!r} is not among the ids in "
            f"NEONPRO_ENCRYPTION_KEYS {sorted(keys)}"
        )
    audit, _ = _key_list(audit_keys or "", "NEONPRO_AUDIT_KEYS")
    if active_audit and active_audit.strip() not in audit:
        raise KeyConfigError(f"NEONPRO_ACTIVE_AUDIT_KEY_ID {active_audit.strip()!r} is not "
                             f"among the ids in NEONPRO_AUDIT_KEYS {sorted(audit)}")
    return KeyRing(
        keys=keys,
        active_id=active_id,
        blind_index_key=_b64_key(blind_index_key, "NEONPRO_BLIND_INDEX_KEY"),
        audit_keys=audit,
        active_audit_id=active_audit.strip() if active_audit else None,
    )


def generate_key_file(path: Path) -> None:
    """Write a new key file (mode 0600) with fresh random keys; never overwrites.

    Raises ``FileExistsError`` if ``path`` exists: replacing a key file would make every
    value encrypted under it unreadable. Safe against a concurrent writer: the file
    appears complete or not at all.
    """
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        raise FileExistsError(f"key file {path} already exists; refusing to overwrite it")
    document = {
        "active": "k1",
        "keys": {"k1": base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")},
        "blind_index_key": base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii"),
        "audit_keys": {"a1": base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")},
        "active_audit_key": "a1",
    }
    payload = (json.dumps(document, indent=2) + "\n").encode("ascii")
    # mkstemp creates the file 0600 whatever the umask
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp_name, path)  # atomic, and fails if the name is taken
        except FileExistsError:
            raise
        except OSError:
            # no hard links on this filesystem: exclusive create instead
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(out, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def dev_key_file_path(settings: Settings) -> Path:
    """Where development and test keep their generated keys (next to the embedded data)."""
    return settings.embedded_dir.parent / DEV_KEY_FILE_NAME


def load_keyring(settings: Settings) -> KeyRing:
    """The key ring from ``settings``: key file, else environment strings, else dev keys.

    Production without keys raises ``KeyConfigError``. A partial configuration (keys
    without a blind-index key, or the reverse) raises in every environment rather than
    falling back to development keys.
    """
    if settings.key_file is not None:
        return _read_key_file(settings.key_file)

    keys = settings.encryption_keys.get_secret_value() if settings.encryption_keys else None
    bik = settings.blind_index_key.get_secret_value() if settings.blind_index_key else None
    audit = settings.audit_keys.get_secret_value() if settings.audit_keys else None
    if keys and bik:
        if settings.environment is Environment.PRODUCTION and not audit:
            raise KeyConfigError(
                "production needs NEONPRO_AUDIT_KEYS ('a1:<base64>'): the audit trail is keyed "
                "with a key of its own, kept outside the database")
        return _keyring_from_strings(keys, bik, settings.active_key_id, audit,
                                     settings.active_audit_key_id)
    if keys or bik or settings.active_key_id:
        raise KeyConfigError(
            "incomplete key configuration: set both NEONPRO_ENCRYPTION_KEYS and "
            "NEONPRO_BLIND_INDEX_KEY (NEONPRO_ACTIVE_KEY_ID is optional), or NEONPRO_KEY_FILE"
        )

    if settings.environment is Environment.PRODUCTION:
        raise KeyConfigError(
            "production refuses to start without encryption keys: set NEONPRO_KEY_FILE or "
            "NEONPRO_ENCRYPTION_KEYS and NEONPRO_BLIND_INDEX_KEY"
        )

    path = dev_key_file_path(settings)
    try:
        generate_key_file(path)
    except FileExistsError:
        pass  # reuse: values encrypted yesterday must still decrypt today
    except OSError as exc:
        raise KeyConfigError(
            f"cannot create the development key file {path} ({exc.strerror}): fix its "
            "directory or set NEONPRO_KEY_FILE"
        ) from None
    ring = _read_key_file(path, generated=True)
    structlog.get_logger(__name__).warning("dev_keys_in_use", path=str(path), detail=_DEV_WARNING)
    return ring


# --------------------------------------------------------------------------- encryption


class FieldCipher:
    """AES-256-GCM for single column values, bound to table, column and row id."""

    __slots__ = ("_active", "_aeads", "_contexts", "_headers")

    def __init__(self, keyring: KeyRing) -> None:
        # one AESGCM object and one header per key, built once
        self._aeads: dict[bytes, tuple[AESGCM, str]] = {}
        self._headers: dict[str, bytes] = {}
        for kid, key in keyring.keys.items():
            kid_bytes = kid.encode("ascii")
            self._aeads[kid_bytes] = (AESGCM(key), kid)
            self._headers[kid] = bytes((BLOB_VERSION, len(kid_bytes))) + kid_bytes
        active_header = self._headers[keyring.active_id]
        self._active: tuple[AESGCM, bytes] = (
            self._aeads[keyring.active_id.encode("ascii")][0],
            active_header,
        )
        # (table, column) -> encoded middle part of the associated data
        self._contexts: dict[tuple[str, str], bytes] = {}

    @property
    def active_key_id(self) -> str:
        return self._active[1][2:].decode("ascii")

    def _context(self, table: str, column: str) -> bytes:
        key = (table, column)
        ctx = self._contexts.get(key)
        if ctx is None:
            if not table or not column or "\x00" in table or "\x00" in column:
                raise ValueError("table and column must be non-empty and contain no NUL")
            ctx = _AAD_LABEL + table.encode() + b"\x00" + column.encode() + b"\x00"
            if len(self._contexts) < _CONTEXT_CACHE_MAX:
                self._contexts[key] = ctx
        return ctx

    def encrypt(self, plaintext: str, *, table: str, column: str, row_id: uuid.UUID) -> bytes:
        aead, header = self._active
        try:
            data = plaintext.encode()
        except UnicodeEncodeError:
            # from None: the exception object holds the whole plaintext
            raise ValueError(f"{table}.{column}: value is not valid Unicode text") from None
        nonce = os.urandom(NONCE_BYTES)
        aad = header + self._context(table, column) + row_id.bytes
        return header + nonce + aead.encrypt(nonce, data, aad)

    def decrypt(self, blob: bytes, *, table: str, column: str, row_id: uuid.UUID) -> str:
        if type(blob) is not bytes:
            blob = bytes(blob)  # memoryview/bytearray from a driver
        if len(blob) < 2 or blob[0] != BLOB_VERSION:  # noqa: PLR2004
            raise DecryptionError(
                f"cannot decrypt {table}.{column}: not an encrypted value of version {BLOB_VERSION}"
            )
        start = 2 + blob[1]
        kid_bytes = blob[2:start]
        entry = self._aeads.get(kid_bytes)
        if entry is None:
            raise DecryptionError(
                f"cannot decrypt {table}.{column}: unknown key id {_show_key_id(kid_bytes)} "
                "(not in the key ring: was it removed before re-encryption finished?)"
            )
        aead, kid = entry
        if len(blob) < start + NONCE_BYTES + TAG_BYTES:
            raise DecryptionError(f"cannot decrypt {table}.{column} (key {kid!r}): truncated")
        body = start + NONCE_BYTES
        aad = blob[:start] + self._context(table, column) + row_id.bytes
        try:
            data = aead.decrypt(blob[start:body], blob[body:], aad)
        except InvalidTag:
            raise DecryptionError(
                f"cannot decrypt {table}.{column} (key {kid!r}): authentication failed - "
                "the value was altered or belongs to another row, column or table"
            ) from None
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise DecryptionError(
                f"cannot decrypt {table}.{column} (key {kid!r}): not UTF-8 text"
            ) from None

    def encrypt_optional(
        self, plaintext: str | None, *, table: str, column: str, row_id: uuid.UUID
    ) -> bytes | None:
        if plaintext is None:
            return None
        return self.encrypt(plaintext, table=table, column=column, row_id=row_id)

    def decrypt_optional(
        self, blob: bytes | None, *, table: str, column: str, row_id: uuid.UUID
    ) -> str | None:
        if blob is None:
            return None
        return self.decrypt(blob, table=table, column=column, row_id=row_id)

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        """The id of the key a value was encrypted with (for rotation reports)."""
        blob = bytes(blob)
        if len(blob) < 2 or blob[0] != BLOB_VERSION:  # noqa: PLR2004
            raise DecryptionError(f"not an encrypted value of version {BLOB_VERSION}")
        kid_bytes = blob[2 : 2 + blob[1]]
        try:
            kid = kid_bytes.decode("ascii")
        except UnicodeDecodeError:
            kid = ""
        if len(kid_bytes) != blob[1] or not _valid_key_id(kid):
            raise DecryptionError("malformed encrypted value: bad key id")
        return kid


def _show_key_id(kid_bytes: bytes) -> str:
    try:
        kid = kid_bytes.decode("ascii")
    except UnicodeDecodeError:
        return "<malformed>"
    return repr(kid) if _valid_key_id(kid) else "<malformed>"


# --------------------------------------------------------------------------- blind index


class BlindIndexer:
    """Deterministic keyed digests for equality lookup and uniqueness, never reversible."""

    __slots__ = ("_mac", "cursors")

    def __init__(self, keyring: KeyRing) -> None:
        self._mac = hmac.new(keyring.blind_index_key, digestmod=hashlib.sha256)
        self.cursors = SealedCursors(keyring.blind_index_key)  # keyset cursors, sealed

    def _digest(self, message: bytes) -> bytes:
        mac = self._mac.copy()  # copying the keyed state skips re-deriving the key pads
        mac.update(message)
        return mac.digest()

    def index(self, kind: str, normalized_value: str) -> bytes:
        """HMAC-SHA256 of ``kind + "\\x00" + value``: 32 bytes, separated by kind."""
        if not kind or "\x00" in kind or kind == _PATIENT_REF_KIND:
            raise ValueError(f"invalid blind-index kind {kind!r}")
        try:
            message = f"{kind}\x00{normalized_value}".encode()
        except UnicodeEncodeError:
            raise ValueError(f"{kind}: value is not valid Unicode text") from None
        return self._digest(message)

    def patient_ref(self, patient_id: uuid.UUID) -> bytes:
        """A keyed 32-byte reference to a patient for audit events (not the raw id)."""
        return self._digest(b"patient_ref\x00" + patient_id.bytes)


class SealedCursors:
    """Keyset cursors sealed with AES-GCM under a key derived from the blind-index key, the
    scope (clinic and query) as associated data: the client sees random bytes, and a cursor
    altered, forged, or replayed against another clinic or query does not open (a 4xx)."""

    __slots__ = ("_aead",)

    def __init__(self, blind_index_key: bytes) -> None:
        key = hmac.new(blind_index_key, b"neonpro keyset cursor v1", hashlib.sha256).digest()
        self._aead = AESGCM(key)

    def seal(self, values: list[Any], scope: str) -> str:
        nonce = os.urandom(12)
        plain = json.dumps(values, separators=(",", ":"), default=str).encode()
        sealed = nonce + self._aead.encrypt(nonce, plain, scope.encode())
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, cursor: str, scope: str, expected: int) -> list[Any]:
        from neonpro.domain.paging import check_cursor_values  # noqa: PLC0415  (domain rule)

        values = None
        try:
            raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode())
            if len(raw) >= 12 + 16:  # a nonce and a tag at least
                values = json.loads(self._aead.decrypt(raw[:12], raw[12:], scope.encode()))
        except (binascii.Error, ValueError, UnicodeError, InvalidTag):
            values = None
        return check_cursor_values(values, expected)


# --------------------------------------------------------------------------- key file upkeep
# Used by `neonpro keys` (add, activate, remove, reindex). Every change re-reads the file
# under an exclusive lock on its directory, writes a complete new file next to it (same
# mode and owner), checks that the new file loads as a key ring, then renames it over the
# old one: readers see the old file or the new one, never a mix. Unknown fields are kept.

_NUMBERED_KEY_ID: Final = re.compile(r"k([0-9]{1,9})")
NEXT_BLIND_INDEX_KEY_FIELD: Final = "next_blind_index_key"
RETIRED_BLIND_INDEX_KEYS_FIELD: Final = "retired_blind_index_keys"


def decode_key(text: str, what: str) -> bytes:
    """A 32-byte key from base64 text; errors name ``what``, never the text."""
    return _b64_key(text, what)


def encode_key(key: bytes) -> str:
    """Base64 text of a key, as the key file stores it."""
    return base64.b64encode(key).decode("ascii")


def next_key_id(existing: Iterable[str]) -> str:
    """The id after the highest ``k<n>`` among ``existing`` (``k1`` if there is none)."""
    ids = set(existing)
    numbers = [int(m.group(1)) for kid in ids if (m := _NUMBERED_KEY_ID.fullmatch(kid))]
    n = max(numbers, default=0) + 1
    while f"k{n}" in ids:  # pragma: no cover - only if ids and numbers disagree
        n += 1
    return f"k{n}"


@contextmanager
def _key_file_locked(path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The key file's real path and JSON document, under an exclusive directory lock."""
    real = Path(os.path.realpath(path))  # a symlinked file is replaced where it really is
    _read_key_file(real)  # the usual checks (exists, regular file, mode, valid keys) first
    try:
        dir_fd = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise KeyConfigError(f"cannot open the directory of {real}: {exc.strerror}") from None
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        _read_key_file(real)  # again: another writer may have changed it meanwhile
        document = json.loads(real.read_bytes())
        yield real, document
    finally:
        os.close(dir_fd)  # closing releases the lock


def _replace_key_file(real: Path, document: Mapping[str, Any]) -> KeyRing:
    """Atomically replace ``real`` with ``document``; returns the ring it now holds."""
    info = real.stat()
    payload = (json.dumps(document, indent=2) + "\n").encode("ascii")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.",
                                        suffix=".tmp")
    except OSError as exc:
        raise KeyConfigError(
            f"cannot write next to key file {real} ({exc.strerror}): change it where it is "
            "managed (secret store) instead"
        ) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fchmod(handle.fileno(), stat.S_IMODE(info.st_mode) & 0o700)
            if os.geteuid() == 0 and (info.st_uid, info.st_gid) != (0, 0):
                os.fchown(handle.fileno(), info.st_uid, info.st_gid)  # the service must read it
            os.fsync(handle.fileno())
        ring = _read_key_file(tmp)  # never install a file that would not load
        tmp.replace(real)
    except OSError as exc:
        raise KeyConfigError(f"cannot replace key file {real}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    return ring


def add_key_to_file(path: Path, *, activate: bool = True) -> str:
    """Add a fresh random encryption key with the next id (``k2``, ``k3``...); return its id.

    With ``activate`` it becomes the key that encrypts new values (in processes started
    after this). Existing keys stay: values under them keep decrypting.
    """
    with _key_file_locked(path) as (real, document):
        new_id = next_key_id(document["keys"])
        document["keys"] = {**document["keys"], new_id: encode_key(os.urandom(KEY_BYTES))}
        if activate:
            document["active"] = new_id
        _replace_key_file(real, document)
    return new_id


def activate_key_in_file(path: Path, key_id: str) -> None:
    """Make ``key_id`` (already in the file) the key that encrypts new values."""
    with _key_file_locked(path) as (real, document):
        if key_id not in document["keys"]:
            raise KeyConfigError(
                f"that key id is not in key file {real} (ids: {sorted(document['keys'])})"
            )
        document["active"] = key_id
        _replace_key_file(real, document)


def remove_key_from_file(path: Path, key_id: str) -> None:
    """Drop ``key_id`` from the file; the active key cannot be removed.

    The caller checks first that no value is still encrypted under it.
    """
    with _key_file_locked(path) as (real, document):
        if key_id not in document["keys"]:
            raise KeyConfigError(f"that key id is not in key file {real} "
                                 f"(ids: {sorted(document['keys'])})")
        if document["active"] == key_id:
            raise KeyConfigError(f"key {key_id!r} is the active key: activate another first")
        document["keys"] = {k: v for k, v in document["keys"].items() if k != key_id}
        _replace_key_file(real, document)


def pending_blind_index_key(path: Path) -> bytes:
    """The next blind-index key stored in the key file, created on first call.

    Stored (``next_blind_index_key``) before any index is rewritten with it, so an
    interrupted re-indexing resumes with the same key. Readers ignore the field.
    """
    with _key_file_locked(path) as (real, document):
        text = document.get(NEXT_BLIND_INDEX_KEY_FIELD)
        if isinstance(text, str):
            return _b64_key(text, f"{NEXT_BLIND_INDEX_KEY_FIELD} in key file {real}")
        key = os.urandom(KEY_BYTES)
        document[NEXT_BLIND_INDEX_KEY_FIELD] = encode_key(key)
        _replace_key_file(real, document)
        return key


def promote_blind_index_key(path: Path, key: bytes, *, retired_at: str) -> None:
    """Make ``key`` (the pending one) the blind-index key; keep the old one as retired.

    The retired key is kept (``retired_blind_index_keys``) because audit checkpoints
    signed before the change are verified with a key derived from it.
    """
    with _key_file_locked(path) as (real, document):
        pending = document.get(NEXT_BLIND_INDEX_KEY_FIELD)
        if not isinstance(pending, str) or not hmac.compare_digest(
            _b64_key(pending, f"{NEXT_BLIND_INDEX_KEY_FIELD} in key file {real}"), key
        ):
            raise KeyConfigError(f"key file {real} has no matching {NEXT_BLIND_INDEX_KEY_FIELD}")
        retired = document.get(RETIRED_BLIND_INDEX_KEYS_FIELD)
        retired = list(retired) if isinstance(retired, list) else []
        retired.append({"key": document["blind_index_key"], "retired_at": retired_at})
        document[RETIRED_BLIND_INDEX_KEYS_FIELD] = retired
        document["blind_index_key"] = encode_key(key)
        del document[NEXT_BLIND_INDEX_KEY_FIELD]
        _replace_key_file(real, document)


def add_audit_key_to_file(path: Path) -> str:
    """Add a fresh audit key with the next id (``a2``, ``a3``...) and make it the one that
    seals new events and signs new checkpoints; returns its id.

    Earlier audit keys stay: the events and checkpoints they signed keep verifying (remove
    one only once nothing it sealed is kept, not even in archives). A key file of before
    key ids keeps its ``audit_key`` as ``a1``.
    """
    with _key_file_locked(path) as (real, document):
        keys = dict(document.get("audit_keys") or {})
        if "audit_key" in document:
            keys.setdefault(LEGACY_AUDIT_KEY_ID, document["audit_key"])
        numbers = [int(m.group(1)) for kid in keys
                   if (m := _NUMBERED_AUDIT_KEY_ID.fullmatch(kid))]
        new_id = f"a{max(numbers, default=0) + 1}"
        keys[new_id] = encode_key(os.urandom(KEY_BYTES))
        document["audit_keys"] = keys
        document["active_audit_key"] = new_id
        _replace_key_file(real, document)
    return new_id
