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

In parts: :mod:`.keyring`, :mod:`.loading`, :mod:`.cipher`, :mod:`.keyfile`.
"""

from __future__ import annotations

from neonpro.adapters.crypto.cipher import (
    BlindIndexer,
    FieldCipher,
    SealedCursors,
)
from neonpro.adapters.crypto.keyfile import (
    NEXT_BLIND_INDEX_KEY_FIELD,
    RETIRED_BLIND_INDEX_KEYS_FIELD,
    activate_key_in_file,
    add_audit_key_to_file,
    add_key_to_file,
    decode_key,
    encode_key,
    next_key_id,
    pending_blind_index_key,
    promote_blind_index_key,
    remove_key_from_file,
)
from neonpro.adapters.crypto.keyring import (
    DERIVED_AUDIT_KEY_ID,
    DEV_KEY_FILE_NAME,
    KEY_BYTES,
    LEGACY_AUDIT_KEY_ID,
    NONCE_BYTES,
    TAG_BYTES,
    DecryptionError,
    KeyConfigError,
    KeyRing,
)
from neonpro.adapters.crypto.loading import (
    announce_development_keys,
    dev_key_file_path,
    development_key_file,
    generate_key_file,
    load_keyring,
)
from neonpro.domain.ports_keys import BLOB_VERSION

__all__ = [
    "BLOB_VERSION",
    "DERIVED_AUDIT_KEY_ID",
    "DEV_KEY_FILE_NAME",
    "KEY_BYTES",
    "LEGACY_AUDIT_KEY_ID",
    "NEXT_BLIND_INDEX_KEY_FIELD",
    "NONCE_BYTES",
    "RETIRED_BLIND_INDEX_KEYS_FIELD",
    "TAG_BYTES",
    "BlindIndexer",
    "DecryptionError",
    "FieldCipher",
    "KeyConfigError",
    "KeyRing",
    "SealedCursors",
    "activate_key_in_file",
    "add_audit_key_to_file",
    "add_key_to_file",
    "announce_development_keys",
    "decode_key",
    "dev_key_file_path",
    "development_key_file",
    "encode_key",
    "generate_key_file",
    "load_keyring",
    "next_key_id",
    "pending_blind_index_key",
    "promote_blind_index_key",
    "remove_key_from_file",
]
