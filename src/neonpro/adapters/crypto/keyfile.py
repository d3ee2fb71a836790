"""Key file upkeep: adding, activating and removing keys, re-keying the blind index."""

from __future__ import annotations

import base64
import fcntl
import hmac
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from neonpro.adapters.crypto.keyring import (
    _NUMBERED_AUDIT_KEY_ID,
    KEY_BYTES,
    LEGACY_AUDIT_KEY_ID,
    KeyConfigError,
    KeyRing,
)
from neonpro.adapters.crypto.loading import (
    _b64_key,
    _read_key_file,
)

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
