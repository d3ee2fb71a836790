"""``neonpro demo seed`` end to end, as a user runs it (a subprocess with NEONPRO_DATABASE_URL)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles

BIN = str(Path(sys.executable).parent / "neonpro")
KEYS = {  # one key ring for the module: the second run must read what the first wrote
    "NEONPRO_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
    "NEONPRO_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
}


def run(url: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **KEYS, "NEONPRO_DATABASE_URL": url, "NEONPRO_ENVIRONMENT": "test"}
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


def test_demo_seed_json(fresh_database_url: str, roles: Roles) -> None:
    url = fresh_database_url
    migrate.upgrade(url, roles)
    result = run(url, "demo", "seed", "--patients", "20", "--months", "1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # stdout is the JSON document and nothing else
    assert len(data["clinics"]) >= 2
    assert len(data["patients"]) == 20
    assert len(data["users"]) >= 3 * len(data["clinics"])
    for key in ("clinics", "users", "patients", "professionals", "service_types"):
        assert all(uuid.UUID(i) for i in data[key])
    assert data["appointments"] > 0
    assert sum(data["statuses"].values()) == data["appointments"]
    assert data["seed"] == 42
    assert "Traceback" not in result.stderr

    again = run(url, "demo", "seed", "--patients", "20", "--months", "1", "--json")
    assert again.returncode == 1
    assert "demo data for seed 42 already exists; use another --seed" in again.stderr
    assert again.stdout == ""
    assert "Traceback" not in again.stderr

    other = run(url, "demo", "seed", "--patients", "5", "--months", "1", "--seed", "7")
    assert other.returncode == 0, other.stderr
    assert "appointments" in other.stdout


@pytest.mark.parametrize("option", [("--patients", "0"), ("--patients", "-5"),
                                    ("--months", "0"), ("--seed", "-1")])
def test_bad_options_are_a_clean_error(option: tuple[str, str]) -> None:
    result = run("postgresql://nobody@127.0.0.1:1/none", "demo", "seed", *option)
    assert result.returncode == 2
    assert f"invalid value for {option[0]} (expected integer range " in result.stderr
    assert f" {option[1]} " not in result.stderr  # what was typed is not repeated
    assert "Traceback" not in result.stderr


def test_an_unmigrated_database_is_a_clean_error(fresh_database_url: str) -> None:
    result = run(fresh_database_url, "demo", "seed", "--patients", "3", "--months", "1")
    assert result.returncode == 1
    assert "neonpro db upgrade" in result.stderr
    assert "Traceback" not in result.stderr
