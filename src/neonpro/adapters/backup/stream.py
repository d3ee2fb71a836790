"""Backup files as streams: SHA-256 while writing, optional chunked AES-256-GCM.

Encrypted layout: ``MAGIC | nonce prefix (8)`` then chunks ``length (4, big endian) |
ciphertext + tag``. Chunk *i* uses nonce ``prefix | i`` (4 bytes) and the associated
data ``MAGIC | prefix | i | last flag``, so a reordered, dropped, altered or cut-off
chunk fails authentication; a file that ends without a chunk flagged *last* is
reported truncated. The key (32 bytes, base64 in ``NEONPRO_BACKUP_KEY``) never lives in
the backup directory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import struct
from pathlib import Path
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from neonpro.domain.backup import CorruptBackup

MAGIC: Final = b"NPBK\x01"
CHUNK: Final = 1 << 20
_LEN = struct.Struct(">I")
_TAG = 16

__all__ = ["CHUNK", "MAGIC", "CorruptBackup", "HashingWriter", "check_file", "decrypt_file",
           "new_key", "parse_key", "sha256_file", "write_atomically"]


def parse_key(value: str) -> bytes:
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:  # noqa: PLR2004
        msg = "NEONPRO_BACKUP_KEY must be the base64 of 32 random bytes"
        raise ValueError(msg)
    return key


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


class HashingWriter:
    """Writes to ``path`` (0600), hashing what lands on disk, encrypting if a key is given."""

    def __init__(self, path: Path, key: bytes | None) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._sha = hashlib.sha256()
        self._aead = AESGCM(key) if key else None
        self._prefix = os.urandom(8)
        self._index = 0
        self._buffer = bytearray()
        self.size = 0
        if self._aead is not None:
            self._emit(MAGIC + self._prefix)

    def _emit(self, data: bytes) -> None:
        self._file.write(data)
        self._sha.update(data)
        self.size += len(data)

    def _seal(self, plain: bytes, *, last: bool) -> None:
        assert self._aead is not None  # noqa: S101
        aad = MAGIC + self._prefix + struct.pack(">I?", self._index, last)
        nonce = self._prefix + struct.pack(">I", self._index)
        sealed = self._aead.encrypt(nonce, plain, aad)
        self._emit(_LEN.pack(len(sealed)) + sealed)
        self._index += 1

    def write(self, data: bytes) -> None:
        if self._aead is None:
            self._emit(data)
            return
        self._buffer += data
        while len(self._buffer) > CHUNK:
            self._seal(bytes(self._buffer[:CHUNK]), last=False)
            del self._buffer[:CHUNK]

    def close(self) -> str:
        """Flush, fsync, close; the SHA-256 (hex) of the bytes on disk."""
        if self._aead is not None:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._sha.hexdigest()

    def abort(self) -> None:
        """Close without the final chunk (the caller removes the file); closing may fail
        again on the full disk that caused the abort."""
        with contextlib.suppress(OSError):
            self._file.close()


def write_atomically(path: Path, data: bytes, mode: int = 0o600) -> None:
    """``data`` into ``path`` all at once: written beside it, synced, then renamed over it.
    A failure (a full disk) leaves the old file as it was and no temporary file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            sha.update(block)
    return sha.hexdigest()


def check_file(path: Path, expected_sha256: str, expected_size: int | None = None) -> None:
    """Raise ``CorruptBackup`` unless the file is there with the manifest's size and hash."""
    if not path.is_file():
        raise CorruptBackup(f"{path.name} is missing")
    if expected_size is not None and path.stat().st_size != expected_size:
        raise CorruptBackup(f"{path.name} has {path.stat().st_size} bytes, the manifest says "
                            f"{expected_size} (truncated or altered)")
    if sha256_file(path) != expected_sha256:
        raise CorruptBackup(f"{path.name} does not match its SHA-256 in the manifest")


def decrypt_file(source: Path, target: Path, key: bytes) -> None:
    """Decrypt ``source`` into ``target`` (0600); ``CorruptBackup`` on any failure."""
    aead = AESGCM(key)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
        header = src.read(len(MAGIC) + 8)
        if header[: len(MAGIC)] != MAGIC or len(header) != len(MAGIC) + 8:
            raise CorruptBackup(f"{source.name} is not an encrypted neonpro backup")
        prefix = header[len(MAGIC):]
        index = 0
        while True:
            raw_len = src.read(_LEN.size)
            if len(raw_len) < _LEN.size:
                raise CorruptBackup(f"{source.name} is truncated (no final chunk)")
            (length,) = _LEN.unpack(raw_len)
            sealed = src.read(length)
            if len(sealed) != length or length < _TAG:
                raise CorruptBackup(f"{source.name} is truncated (chunk {index})")
            nonce = prefix + struct.pack(">I", index)
            plain = None
            for last in (False, True):
                aad = MAGIC + prefix + struct.pack(">I?", index, last)
                try:
                    plain = aead.decrypt(nonce, sealed, aad)
                except InvalidTag:
                    continue
                dst.write(plain)
                if last:
                    if src.read(1):
                        raise CorruptBackup(f"{source.name} has data after its final chunk")
                    return
                break
            if plain is None:
                raise CorruptBackup(f"{source.name} does not decrypt with NEONPRO_BACKUP_KEY "
                                    f"(wrong key, or chunk {index} altered)")
            index += 1
