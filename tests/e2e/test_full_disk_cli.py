"""A full disk on every backup and PITR path: one line, a non-zero exit, no traceback, no
temporary file left behind, nothing half-written, the target untouched.

Played twice: on a real full disk (a small tmpfs this test mounts, when it may: root), and
by injecting ``OSError(ENOSPC)`` at the write sites in process (always)."""

from __future__ import annotations

import base64
import errno
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from neonpro.adapters.backup import stream
from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.entrypoints.cli.app import app as cli
from neonpro.services import clinics, patients
from tests.conftest import make_settings
from tests.e2e.test_cli import BIN
from tests.valid import cpf

KEY = base64.b64encode(b"k" * 32).decode()
MOUNT, UMOUNT = shutil.which("mount") or "/bin/mount", shutil.which("umount") or "/bin/umount"
SYSTEM = Actor(uuid.uuid4(), "system")
Disk = Callable[[int], Path]


def _env(url: str, backups: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEONPRO_")}
    return {**env, "NEONPRO_DATABASE_URL": url, "NEONPRO_ENVIRONMENT": "test",
            "NEONPRO_BACKUP_DIR": str(backups), **extra}


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def _one_line_failure(done: Any, *needles: str) -> None:
    """A subprocess's or an in-process CliRunner's result: non-zero, one line, no trace."""
    code = done.returncode if hasattr(done, "returncode") else done.exit_code
    assert code not in (0, None), done.stdout
    assert getattr(done, "exception", None) is None or isinstance(done.exception, SystemExit)
    err = done.stderr
    assert "Traceback" not in err + (done.stdout or "")
    # neither structured log lines nor the development keys' warning are the answer
    lines = [line for line in err.splitlines() if line.strip()
             and not line.lstrip().startswith(("{", "warning: "))]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0].lower(), lines[0]


def _leftovers(where: Path) -> list[str]:
    """Anything of ours a failed run left: partial backups, temporary files and dirs."""
    return sorted(str(p.relative_to(where)) for p in where.rglob("*")
                  if p.name.endswith((".partial", ".tmp")) or (p.name.startswith(
                      ("neonpro-restore-", ".")) and p.name != ".filler"))


@pytest.fixture
def seeded(fresh_database_url: str) -> str:
    migrate.upgrade(fresh_database_url, Roles())
    box = Container(make_settings(fresh_database_url), database_url=fresh_database_url)
    try:
        clinic = clinics.create_clinic(box.service_uow(SYSTEM), ClinicCreate(name="Disco")).id
        for n in range(12):
            patients.register_patient(box.uow(clinic, SYSTEM), PatientCreate(
                full_name=f"Disco Cheio {n}", cpf=cpf(9600 + n)))
    finally:
        box.close()
    return fresh_database_url


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Disk]:
    """Small tmpfs mounts (size in KiB); skipped where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(kib: int) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        done = subprocess.run([MOUNT, "-t", "tmpfs", "-o", f"size={kib}k,mode=0777",
                               "tmpfs", str(where)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here (needs root): the injected ENOSPC "
                        "tests below cover the same write sites")
        mounted.append(where)
        return where

    try:
        yield mount
    finally:
        for where in mounted:
            subprocess.run([UMOUNT, "-l", str(where)], capture_output=True, check=False)


def _fill(disk: Path) -> None:
    """Take every free byte of ``disk``."""
    with (disk / ".filler").open("wb") as filler, pytest.raises(OSError, match="No space"):
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()


def _backup(env: dict[str, str]) -> str:
    made = run(env, "backup", "create", "--json")
    assert made.returncode == 0, made.stderr
    return str(json.loads(made.stdout)["id"])


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_backup_create_verify_restore_on_a_real_full_disk(
        seeded: str, second_database_url: str, tmp_path: Path, tiny_disk: Disk) -> None:
    # create, encrypted, onto a disk too small for it
    small = tiny_disk(32)
    made = run(_env(seeded, small, NEONPRO_BACKUP_KEY=KEY), "backup", "create")
    _one_line_failure(made, "no space left on device")
    assert list(small.iterdir()) == []  # not even an interrupted backup directory

    # verify and restore, encrypted: the backup fits, its decrypted copy does not
    roomy = tmp_path / "roomy"
    backup_id = _backup(_env(seeded, roomy, NEONPRO_BACKUP_KEY=KEY))
    snug = tiny_disk(_size(roomy) // 1024 + 32)  # the files, rounded up to whole pages
    shutil.copytree(roomy / backup_id, snug / backup_id)
    env = _env(seeded, snug, NEONPRO_BACKUP_KEY=KEY)
    _one_line_failure(run(env, "backup", "verify", backup_id), "no space left on device")
    assert _leftovers(snug) == []
    assert not (snug / backup_id / "verify.json").exists()
    restored = run(env, "backup", "restore", backup_id, "--target", second_database_url)
    _one_line_failure(restored, "no space left on device")
    assert _leftovers(snug) == []
    with psycopg.connect(second_database_url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'patients'"
                            ).fetchone() == (0,)  # decrypted first: the target never touched

    # verify, plain, with the disk full when verify.json is written (the 0-byte file)
    plain_id = _backup(_env(seeded, roomy))
    full = tiny_disk(_size(roomy / plain_id) // 1024 + 32)
    shutil.copytree(roomy / plain_id, full / plain_id)
    _fill(full)
    _one_line_failure(run(_env(seeded, full), "backup", "verify", plain_id),
                      "no space left on device")
    assert _leftovers(full) == []


def test_pitr_setup_and_restore_on_a_real_full_disk(
        seeded: str, tmp_path: Path, tiny_disk: Disk) -> None:
    disk = tiny_disk(64)
    _fill(disk)
    pgdata = tmp_path / "pgdata"
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("15\n")
    env = _env(seeded, tmp_path / "b", NEONPRO_PITR_DIR=str(disk / "pitr"))
    done = run(env, "pitr", "setup", "--pgdata", str(pgdata), "--port", "1", "--no-restart")
    _one_line_failure(done, "no space left on device")
    assert _leftovers(disk) == []
    restore = run(env, "pitr", "restore", "--to", "2026-01-01T00:00:00+00:00", "--yes")
    _one_line_failure(restore, "could not be saved", "nothing was restored")
    assert _leftovers(disk) == []


# ------------------------------------------------------------------ injected, in process


def _enospc(*_args: Any, **_kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "injected")


def _cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> Any:
    for name, value in env.items():
        if name.startswith("NEONPRO_"):
            monkeypatch.setenv(name, value)
    return CliRunner().invoke(cli, list(args))


def test_injected_enospc_at_each_write_site(
        seeded: str, second_database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    where = tmp_path / "backups"
    env = _env(seeded, where, NEONPRO_BACKUP_KEY=KEY)
    # encrypted dump: the writer fails after its first chunk
    written: list[int] = []
    real_emit = stream.HashingWriter._emit

    def emit_then_fail(self: Any, data: bytes) -> None:
        written.append(len(data))
        if len(written) > 1:
            _enospc()
        real_emit(self, data)

    with monkeypatch.context() as m:
        m.setattr(stream.HashingWriter, "_emit", emit_then_fail)
        _one_line_failure(_cli(m, env, "backup", "create"), "no space left on device")
    assert written
    assert not where.exists() or list(where.iterdir()) == []
    backup_id = _backup(env)
    # decryption for verify and restore
    with monkeypatch.context() as m:
        m.setattr("neonpro.adapters.backup.store.decrypt_file", _enospc)
        _one_line_failure(_cli(m, env, "backup", "verify", backup_id), "no space left")
        _one_line_failure(_cli(m, env, "backup", "restore", backup_id, "--target",
                               second_database_url), "no space left")
    assert _leftovers(where) == []
    with psycopg.connect(second_database_url.replace("+psycopg", "")) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'patients'"
                            ).fetchone() == (0,)  # the target was never touched
    # verify.json and the manifest: atomically or not at all
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", _enospc)
        _one_line_failure(_cli(m, env, "backup", "verify", backup_id), "no space left")
        _one_line_failure(_cli(m, env, "backup", "create"), "no space left")
    assert _leftovers(where) == []
    assert not (where / backup_id / "verify.json").exists()
    # pitr: the erasures to keep cannot be saved, so nothing is rewound
    pitr_dir = tmp_path / "pitr"
    pitr_dir.mkdir()
    with monkeypatch.context() as m:
        m.setattr("neonpro.adapters.backup.pitr_cluster.write_atomically", _enospc)
        m.setenv("NEONPRO_PITR_DIR", str(pitr_dir))
        done = _cli(m, env, "pitr", "restore", "--to", "2026-01-01T00:00:00+00:00", "--yes")
        _one_line_failure(done, "could not be saved", "nothing was restored")
    assert list(pitr_dir.iterdir()) == []


def test_write_atomically_leaves_the_old_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "manifest.json"
    target.write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(OSError, match="No space"):
        stream.write_atomically(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
