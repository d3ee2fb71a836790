"""Field encryption (AES-256-GCM), blind indexes (HMAC-SHA256) and sealed cursors."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import uuid
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from neonpro.adapters.crypto.keyring import (
    _AAD_LABEL,
    _CONTEXT_CACHE_MAX,
    _PATIENT_REF_KIND,
    NONCE_BYTES,
    TAG_BYTES,
    DecryptionError,
    KeyRing,
    _valid_key_id,
)
from neonpro.domain.ports_keys import BLOB_VERSION  # the stored values' format


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
