"""The key ring: field keys by id, the blind-index and audit keys; the errors."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from neonpro.domain.ports_keys import UnreadableValue

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
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
_DEV_WARNING: Final = ("this process uses generated development keys, fine for trying neonpro: "
                       "never use them for real patient data (set NEONPRO_KEY_FILE, "
                       "docs/keys.md)")
_URLSAFE_TO_STD: Final = str.maketrans("-_", "+/")


# Adapter-level, not a DomainError: the process cannot run at all (keys missing or malformed,
# found while building the container, before any use case), so no HTTP answer describes it;
# the CLI answers it in one line (cli/_common.explain); the API cannot start without keys.
class KeyConfigError(RuntimeError):
    """Keys are missing or malformed; the message says what to set, never the key."""


# Adapter-level, not a DomainError: stored data or the key ring is broken, never the
# caller's doing; the API answers a generic 500 (problems.py) and alerts the operators.
class DecryptionError(UnreadableValue):
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
