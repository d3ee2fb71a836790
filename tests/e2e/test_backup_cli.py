"""``neonpro backup`` as an operator runs it: create, list, verify, restore, the overwrite
guard and a corrupted file, each with its exit code and a one-line message."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.e2e.test_cli import BIN


def run(url: str, backup_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEONPRO_DATABASE_URL": url, "NEONPRO_ENVIRONMENT": "test",
           "NEONPRO_BACKUP_DIR": str(backup_dir)}
    env.pop("NEONPRO_BACKUP_KEY", None)
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=300,
                          check=False)


def test_backup_commands_end_to_end(fresh_database_url: str, second_database_url: str,
                                    tmp_path: Path) -> None:
    url, target, where = fresh_database_url, second_database_url, tmp_path / "backups"
    assert run(url, where, "db", "upgrade").returncode == 0
    seeded = run(url, where, "demo", "seed", "--patients", "15", "--months", "1")
    assert seeded.returncode == 0, seeded.stderr

    created = run(url, where, "backup", "create", "--json")
    assert created.returncode == 0, created.stderr
    backup_id = json.loads(created.stdout)["id"]
    listed = json.loads(run(url, where, "backup", "list", "--json").stdout)
    assert [b["id"] for b in listed] == [backup_id]
    assert listed[0]["verified"] is False

    verified = run(url, where, "backup", "verify", backup_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "PASS" in verified.stdout
    assert json.loads(run(url, where, "backup", "list", "--json").stdout)[0]["verified"]

    restored = run(url, where, "backup", "restore", backup_id, "--target", target, "--json")
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert json.loads(restored.stdout)["health_ok"] is True

    again = run(url, where, "backup", "restore", backup_id, "--target", target)
    assert again.returncode == 2
    assert "not empty" in again.stderr
    assert "Traceback" not in again.stderr

    dump = where / backup_id / "data.dump"
    dump.write_bytes(dump.read_bytes()[:-64])
    bad = run(url, where, "backup", "verify", backup_id)
    assert bad.returncode == 1
    assert "FAIL" in bad.stdout
    refused = run(url, where, "backup", "restore", backup_id, "--target", target, "--force")
    assert refused.returncode == 3
    assert "corrupt backup" in refused.stderr
    assert "Traceback" not in refused.stderr

    missing = run(url, where, "backup", "verify", "no-such-backup")
    assert missing.returncode == 1
    assert "no complete backup" in missing.stderr

    pruned = run(url, where, "backup", "prune", "--dry-run", "--json")
    assert pruned.returncode == 0, pruned.stderr
    assert backup_id in json.loads(pruned.stdout)["keep"]
