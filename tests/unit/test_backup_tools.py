"""Backup helpers without a database: tool messages never carry row values; the stream
cipher refuses a cut-off, reordered or foreign file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from neonpro.adapters.backup.pgtools import last_line
from neonpro.adapters.backup.stream import CHUNK, CorruptBackup, HashingWriter, decrypt_file


def test_a_failed_copy_never_quotes_the_row() -> None:
    stderr = (
        'pg_restore: error: COPY failed for table "patients": ERROR:  null value in column '
        '"clinic_id" of relation "patients" violates not-null constraint\n'
        "DETAIL:  Failing row contains (null, Maria da Silva, 111.444.777-35).\n"
        'CONTEXT:  COPY patients, line 1: "Maria da Silva\t111.444.777-35"\n'
        "pg_restore: warning: errors ignored on restore: 1\n")
    line = last_line(stderr)
    assert line.startswith("pg_restore: error: COPY failed for table")
    assert "Maria" not in line
    assert "111.444.777-35" not in line
    assert last_line(b"") == "no message"


def _roundtrip(tmp_path: Path, data: bytes, key: bytes) -> Path:
    enc = tmp_path / "x.enc"
    writer = HashingWriter(enc, key)
    for i in range(0, len(data), 4096):
        writer.write(data[i:i + 4096])
    writer.close()
    return enc


def test_encrypted_stream_round_trip_and_tampering(tmp_path: Path) -> None:
    key = os.urandom(32)
    data = os.urandom(2 * CHUNK + 1234)
    enc = _roundtrip(tmp_path, data, key)
    out = tmp_path / "x.plain"
    decrypt_file(enc, out, key)
    assert out.read_bytes() == data

    raw = enc.read_bytes()
    cut = tmp_path / "cut.enc"  # ends exactly after a full, non-final chunk
    first_chunk_end = 13 + 4 + CHUNK + 16
    cut.write_bytes(raw[:first_chunk_end])
    with pytest.raises(CorruptBackup, match="truncated"):
        decrypt_file(cut, out, key)
    flipped = bytearray(raw)
    flipped[first_chunk_end + 100] ^= 1
    (tmp_path / "flip.enc").write_bytes(bytes(flipped))
    with pytest.raises(CorruptBackup, match="does not decrypt"):
        decrypt_file(tmp_path / "flip.enc", out, key)
    with pytest.raises(CorruptBackup, match="does not decrypt"):
        decrypt_file(enc, out, os.urandom(32))
