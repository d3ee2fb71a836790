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
from neonpro.devtools.demo import RUN_DEMO_MONTHS, RUN_DEMO_PATIENTS

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


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_too_little_history_says_what_it_falls_back_to_and_what_to_run(
        fresh_database_url: str, roles: Roles) -> None:
    url = fresh_database_url
    migrate.upgrade(url, roles)
    seeded = run(url, "demo", "seed", "--patients", "4", "--months", "1", "--json")
    assert seeded.returncode == 0, seeded.stderr
    clinic = json.loads(seeded.stdout)["clinics"][0]

    trained = run(url, "noshow", "train", "--clinic", clinic)
    assert trained.returncode == 0, trained.stderr
    assert "v1-prior" in trained.stdout
    # when it falls back, and why
    assert re.search(r"prior-only fallback, because \d+ attended or missed appointments "
                     r"\(\d+ no-shows\): a fitted model needs 200", trained.stdout), trained.stdout
    as_json = json.loads(run(url, "noshow", "train", "--clinic", clinic, "--json").stdout)
    assert as_json[0]["fallback"].startswith(tuple("0123456789"))

    line = _one_error_line(run(url, "noshow", "evaluate", "--clinic", clinic))
    assert "evaluate once the clinic has more history" in line, line  # what to do
    bad = run(url, "noshow", "score", "--days", "0")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_the_demo_of_dev_run_trains_and_evaluates(fresh_database_url: str,
                                                  roles: Roles) -> None:
    """``./dev run`` (``serve --demo``) loads RUN_DEMO_PATIENTS over RUN_DEMO_MONTHS with the
    default seed: its first clinic, the one it prints, trains a fitted model and evaluates
    it with the default hold-out; another clinic evaluates or says what to run, in one
    line. Before: 60 patients over 3 months, and "no history before the hold-out"."""
    url = fresh_database_url
    migrate.upgrade(url, roles)
    seeded = run(url, "demo", "seed", "--patients", str(RUN_DEMO_PATIENTS), "--months",
                 str(RUN_DEMO_MONTHS), "--json", timeout=900)
    assert seeded.returncode == 0, seeded.stderr
    first, *others = json.loads(seeded.stdout)["clinics"]

    evaluated = run(url, "noshow", "evaluate", "--clinic", first)
    assert evaluated.returncode == 0, evaluated.stderr
    assert AUC_LINE.match(evaluated.stdout.strip().splitlines()[-1]), evaluated.stdout
    for clinic in others:
        result = run(url, "noshow", "evaluate", "--clinic", clinic)
        if result.returncode != 0:
            line = _one_error_line(result)
            assert "--holdout-months" in line or "more history" in line, line

    trained = run(url, "noshow", "train", "--json")
    assert trained.returncode == 0, trained.stderr
    models = {m["clinic_id"]: m for m in json.loads(trained.stdout)}
    assert models[first]["model_version"] == "v1-logistic"
    assert models[first]["fallback"] is None
