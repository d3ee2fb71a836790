"""A command line that finds its way (issue 20, item 3): ``clinics list``, ``demo info``
and ``staff add``, whose account then signs in with ``POST /auth/login``.

In process with Typer's runner (the password is typed on standard input), on the session
database, with a key file of the test's own and the JWT secret of the in-process API, so
a token the CLI prints is one the API accepts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from neonpro.adapters.crypto import generate_key_file
from neonpro.adapters.crypto.loading import DEV_KEYS_ANNOUNCED_ENV
from neonpro.bootstrap import Container
from neonpro.domain.actors import SystemActors
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.entrypoints.cli.app import app
from neonpro.services import clinics

RUN_CLI = "import sys; from neonpro.entrypoints.cli import main; sys.argv[0] = 'neonpro'; main()"
PASSWORD = "uma-senha-comprida-o-bastante"
JWT_SECRET = "x" * 32  # the in-process API's (tests/e2e/conftest.py)


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    # in-process: keep the session's logging (the PII guard's DEBUG capture) as it is
    monkeypatch.setattr("neonpro.entrypoints.cli._common.configure_logging",
                        lambda *_a, **_k: None)
    keys = tmp_path / "keys.json"
    generate_key_file(keys)
    return {"NEONPRO_DATABASE_URL": database_url, "NEONPRO_KEY_FILE": str(keys),
            "NEONPRO_ENVIRONMENT": "test", "NEONPRO_JWT_SECRET": JWT_SECRET}


@pytest.fixture(scope="module")
def clinic(box: Container) -> uuid.UUID:
    return clinics.create_clinic(box.service_uow(SystemActors.CLI),
                                 ClinicCreate(name="Clínica Do Caminho")).id


def _cli(env: dict[str, str], *args: str, typed: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env, input=typed)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _email() -> str:
    return f"caminho.{uuid.uuid4().hex[:8]}@clinica.example"


def test_clinics_list_names_each_clinic_with_its_whole_id(env: dict[str, str],
                                                          clinic: uuid.UUID) -> None:
    code, output = _cli(env, "clinics", "list")
    assert code == 0, output
    line = next(line for line in output.splitlines() if str(clinic) in line)
    assert "Clínica Do Caminho" in line
    code, output = _cli(env, "clinics", "list", "--json")
    assert code == 0, output
    assert {"id": str(clinic), "name": "Clínica Do Caminho", "is_active": True} in json.loads(
        output)


def test_staff_add_creates_an_account_that_signs_in(env: dict[str, str], clinic: uuid.UUID,
                                                    client: TestClient,
                                                    database_url: str) -> None:
    email = _email()
    code, output = _cli(env, "staff", "add", "--clinic", str(clinic), "--email", email,
                        "--role", "receptionist", "--name", "Pessoa Do Caminho", "--json",
                        typed=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0, output
    assert PASSWORD not in output
    added = json.loads(output[output.index("{"):])
    assert added["clinic_id"] == str(clinic)
    assert added["role"] == "receptionist"

    answer = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    assert client.get("/patients", headers={"Authorization": f"Bearer {token}"}
                      ).status_code == 200
    wrong = client.post("/auth/login", json={"email": email, "password": PASSWORD + "!"})
    assert wrong.status_code == 401

    # audited like every staff change: the account and its membership, by the CLI
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://"),
                           poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT resource_type, action, actor_id FROM audit_events "
                "WHERE resource_id = :id"), {"id": added["user_id"]}).all()
    finally:
        engine.dispose()
    created = {(r.resource_type, r.action, r.actor_id) for r in rows}
    assert {("staff_users", "CREATE", SystemActors.CLI.id),
            ("clinic_memberships", "CREATE", SystemActors.CLI.id)} <= created, rows


def test_staff_add_says_what_is_wrong_in_one_line(env: dict[str, str],
                                                  clinic: uuid.UUID) -> None:
    taken = _email()
    code, output = _cli(env, "staff", "add", "--clinic", str(clinic), "--email", taken,
                        "--role", "admin", typed=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0, output
    assert taken not in output
    typed = f"{PASSWORD}\n{PASSWORD}\n"
    cases = [  # (arguments, what the line says, exit status)
        (["--clinic", str(uuid.uuid4()), "--email", _email(), "--role", "admin"],
         "not found", 1),
        (["--clinic", str(clinic), "--email", "caminho-sem-arroba.example", "--role", "admin"],
         "email:", 1),
        (["--clinic", str(clinic), "--email", _email(), "--role", "chefe"],
         "invalid value for --role", 2),
        (["--clinic", "caminho", "--email", _email(), "--role", "admin"],
         "invalid value for --clinic", 2),
        (["--clinic", str(clinic), "--email", taken.upper(), "--role", "admin"],
         "already has this email", 1),
        (["--clinic", str(clinic), "--email", _email(), "--role", "admin", "--name", ""],
         "display_name", 1),
    ]
    for args, said, status in cases:
        code, output = _cli(env, "staff", "add", *args, typed=typed)
        lines = [line for line in output.splitlines()  # not the session's log lines
                 if line.strip() and not line.startswith(("password", "Repeat", "{"))]
        assert code == status, (args, output)
        assert len(lines) == 1, (args, output)
        assert lines[0].startswith("error:"), (args, output)
        assert said in lines[0], (args, output)
        assert PASSWORD not in output
        assert "caminho." not in lines[0], output
    short = "curta"
    code, output = _cli(env, "staff", "add", "--clinic", str(clinic), "--email", _email(),
                        "--role", "admin", typed=f"{short}\n{short}\n")
    assert code == 1, output
    assert output.strip().splitlines()[-1] == "error: password: at least 12 characters"


def test_demo_info_shows_the_demo_clinic_and_a_token_the_api_accepts(
        env: dict[str, str], client: TestClient) -> None:
    code, output = _cli(env, "demo", "seed", "--patients", "5", "--months", "1",
                        "--seed", "9020", "--json")
    assert code == 0, output
    code, output = _cli(env, "demo", "info", "--json")
    assert code == 0, output
    info = json.loads(output)
    assert "(demo " in info["name"]
    assert info["role"] == "admin"
    answer = client.get("/clinic", headers={"Authorization": f"Bearer {info['token']}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == info["clinic_id"]

    code, output = _cli(env, "demo", "info")
    assert code == 0, output
    assert info["clinic_id"] in output
    assert info["name"] in output
    assert "admin token (development only" in output


def test_demo_info_without_a_demo_clinic_says_so(fresh_database_url: str,
                                                 env: dict[str, str]) -> None:
    here = {**env, "NEONPRO_DATABASE_URL": fresh_database_url}
    code, output = _cli(here, "db", "upgrade")
    assert code == 0, output
    code, output = _cli(here, "clinics", "list")
    assert code == 0, output
    assert "no clinic yet" in output
    code, output = _cli(here, "demo", "info")
    assert code == 1
    assert output.strip() == ("error: this database has no demo clinic: run `neonpro demo "
                              "seed` (or `./dev run`) first")


def test_the_development_keys_warning_is_said_once_in_plain_words(
        env: dict[str, str], clinic: uuid.UUID, tmp_path: Path) -> None:
    """A command that opens the key ring more than once (the container, the token codec,
    the seal at exit) says it once, as a sentence, and not as a log event."""
    run_env = {k: v for k, v in os.environ.items()
               if k not in ("NEONPRO_KEY_FILE", DEV_KEYS_ANNOUNCED_ENV)}
    run_env.update({k: v for k, v in env.items() if k != "NEONPRO_KEY_FILE"})
    run_env["NEONPRO_EMBEDDED_DIR"] = str(tmp_path / "embedded" / "data")
    done = subprocess.run([sys.executable, "-c", RUN_CLI, "token", "--clinic", str(clinic),
                           "--role", "admin"], capture_output=True, text=True, env=run_env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "development keys" in line]
    assert len(said) == 1, done.stderr
    assert said[0].startswith("warning: this process uses generated development keys")
    assert "never use them for real patient data" in said[0]
    assert "dev_keys_in_use" not in done.stderr
    assert "dev_jwt_secret_in_use" not in done.stderr
