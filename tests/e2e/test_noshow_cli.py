"""``neonpro noshow`` end to end, as an operator runs it: seed the demo history, train,
evaluate (the AUC line against the prior-only baseline), score; clean errors."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from neonpro.adapters.db import migrate
from neonpro.adapters.db.security import Roles

BIN = str(Path(sys.executable).parent / "neonpro")
KEYS = {
    "NEONPRO_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
    "NEONPRO_BLIND_INDEX_KEY": base64.b64encode(os.urandom(32)).decode(),
}
AUC_LINE = re.compile(r"^AUC model=(0\.\d\d|1\.00) baseline=(0\.\d\d|1\.00)$")


def run(url: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **KEYS, "NEONPRO_DATABASE_URL": url, "NEONPRO_ENVIRONMENT": "test",
           "COLUMNS": "200"}
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


@pytest.mark.slow
def test_train_evaluate_and_score_on_the_demo_history(fresh_database_url: str,
                                                      roles: Roles) -> None:
    url = fresh_database_url
    migrate.upgrade(url, roles)
    seeded = run(url, "demo", "seed", "--patients", "200", "--months", "12", "--seed", "77",
                 "--json")
    assert seeded.returncode == 0, seeded.stderr
    clinic = json.loads(seeded.stdout)["clinics"][0]  # the largest demo clinic

    evaluated = run(url, "noshow", "evaluate", "--clinic", clinic)
    assert evaluated.returncode == 0, evaluated.stderr
    lines = evaluated.stdout.strip().splitlines()
    match = AUC_LINE.match(lines[-1])
    assert match, lines[-1]
    model, baseline = float(match.group(1)), float(match.group(2))
    assert model > baseline
    assert "Brier model=" in evaluated.stdout
    assert "decile" in evaluated.stdout

    trained = run(url, "noshow", "train", "--json")
    assert trained.returncode == 0, trained.stderr
    models = {m["clinic_id"]: m for m in json.loads(trained.stdout)}
    assert models[clinic]["model_version"] == "v1-logistic"
    assert models[clinic]["metrics"]["holdout"]["auc"] > 0.5

    scored = run(url, "noshow", "score", "--clinic", clinic, "--days", "30")
    assert scored.returncode == 0, scored.stderr
    assert "scored with v1-logistic" in scored.stdout

    as_json = run(url, "noshow", "evaluate", "--clinic", clinic, "--json")
    report = json.loads(as_json.stdout)
    assert len(report["deciles"]) == 10
    assert report["auc"] > report["baseline_auc"]
    for result in (seeded, evaluated, trained, scored, as_json):
        assert "Traceback" not in result.stderr


def test_too_little_history_is_a_clean_error(fresh_database_url: str, roles: Roles) -> None:
    migrate.upgrade(fresh_database_url, roles)
    result = run(fresh_database_url, "noshow", "evaluate", "--clinic",
                 "00000000-0000-0000-0000-00000000abcd")
    assert result.returncode == 1
    assert "no attended or missed appointments" in result.stderr
    assert "Traceback" not in result.stderr
    bad = run(fresh_database_url, "noshow", "score", "--days", "0")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
