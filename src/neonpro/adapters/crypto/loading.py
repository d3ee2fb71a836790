"""Loading the key ring from a key file or the environment; generating a dev key file."""

from __future__ import annotations

import base64
import binascii
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from neonpro.adapters.crypto.keyring import (
    _DEV_WARNING,
    _URLSAFE_TO_STD,
    DEV_KEY_FILE_NAME,
    KEY_BYTES,
    KeyConfigError,
    KeyRing,
    _valid_key_id,
)
from neonpro.config import Environment

if TYPE_CHECKING:
    from neonpro.config import Settings

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


# the key file this process (or the one that started it: uvicorn's workers, say) already
# said it uses; set when it first says so, so one run says it once
DEV_KEYS_ANNOUNCED_ENV = "NEONPRO_DEV_KEYS_ANNOUNCED"


def development_key_file(settings: Settings) -> Path | None:
    """The development key file ``settings`` fall back to (no key configured, outside
    production), or None."""
    configured = (settings.key_file or settings.encryption_keys or settings.blind_index_key
                  or settings.active_key_id)
    if configured or settings.environment is Environment.PRODUCTION:
        return None
    return dev_key_file_path(settings)


def announce_development_keys(path: Path) -> str | None:
    """The warning that development keys from ``path`` are in use, in plain words, the
    first time this run asks (this process and the processes it starts); None after."""
    if os.environ.get(DEV_KEYS_ANNOUNCED_ENV) == str(path):
        return None
    os.environ[DEV_KEYS_ANNOUNCED_ENV] = str(path)
    return f"{_DEV_WARNING}; they are in {path}"


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
    if announce_development_keys(path) is not None:  # once a run, not once a container
        log = structlog.get_logger("neonpro.adapters.crypto")  # the package's name
        log.warning("dev_keys_in_use", path=str(path), detail=_DEV_WARNING)
    return ring
