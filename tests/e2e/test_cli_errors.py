"""Every CLI command that takes a clinic or an id answers a malformed id, a well-formed
but unknown clinic and a missing object in a real clinic with one line of error and a
non-zero exit: never a traceback, never personal data.

The commands are enumerated from the Typer application, not listed by hand: a command
added later is walked too. An id parameter is one typed UUID, or named ``clinic`` or
``*_id``; a string id needs a well-formed example in :data:`WELL_FORMED` (the test says
so when one is missing).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from neonpro.adapters.crypto import generate_key_file, load_keyring
from neonpro.bootstrap import Container
from neonpro.domain.actors import Actor
from neonpro.domain.schemas.clinic import ClinicCreate
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.entrypoints.cli._common import typer_app
from neonpro.entrypoints.cli.app import app
from neonpro.services import clinics, patients
from tests.conftest import make_settings
from tests.valid import cpf

MALFORMED = "not-an-id"
PATIENT_EMAIL = "paciente.dos.erros@exemplo.test"
# well-formed but unknown values of the string ids (UUIDs are generated)
WELL_FORMED = {"backup_id": "20260101T000000Z-abc123", "key_id": "kunknown"}
PATIENT_NAME = "Paciente Do Teste De Erros"
PATIENT_CPF = cpf(9411)
MAX_LINE = 400


def _commands() -> list[tuple[tuple[str, ...], click.Command]]:
    found: list[tuple[tuple[str, ...], click.Command]] = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                walk(sub, (*path, name))
        else:
            found.append((path, command))

    walk(typer.main.get_command(app), ())
    return found


def _is_clinic(p: click.Parameter) -> bool:
    return p.name in {"clinic", "clinic_id"}


def _is_id(p: click.Parameter) -> bool:
    return (isinstance(p.type, click.types.UUIDParameterType) or _is_clinic(p)
            or bool(p.name and p.name.endswith("_id")))


def _unknown(p: click.Parameter) -> str:
    if isinstance(p.type, click.types.UUIDParameterType):
        return str(uuid.uuid4())
    assert p.name in WELL_FORMED, f"add a well-formed example of {p.name} to WELL_FORMED"
    return WELL_FORMED[p.name]


def _sample(p: click.Parameter, tmp: Path) -> str:
    """A valid value for a required parameter that is not an id."""
    kind = p.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.DateTime):
        return datetime.now(UTC).strftime(kind.formats[0])
    if isinstance(kind, click.types.IntParamType | click.types.FloatParamType):
        return str(getattr(kind, "min", None) or 1)
    if isinstance(kind, click.Path):
        target = tmp / f"sample-{p.name}"
        if kind.dir_okay and not kind.file_okay:
            target.mkdir(exist_ok=True)
        else:
            target.write_text("full_name,cpf\n")
        return str(target)
    if p.name == "target":
        return "postgresql://nobody@127.0.0.1:1/nothing"
    return "x"


def _argv(path: tuple[str, ...], command: click.Command, values: dict[str, str],
          tmp: Path) -> list[str]:
    """The command line: ``values`` for the parameters named there, samples for the other
    required ones, defaults for the rest."""
    argv = list(path)
    for p in command.params:
        if p.name in values:
            value = values[p.name]
        elif p.required:
            value = _sample(p, tmp)
        else:
            continue
        if isinstance(p, click.Argument):
            argv.append(value)
        else:
            assert isinstance(p, click.Option)
            argv += [p.opts[0], value]
    if any(p.name == "yes" for p in command.params):
        argv.append("--yes")
    return argv


ID_COMMANDS = [(path, command) for path, command in _commands()
               if any(_is_id(p) for p in command.params)]


@pytest.fixture(scope="module")
def world(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[
        tuple[dict[str, str], uuid.UUID, Path]]:
    """The environment of the CLI, a real clinic with one patient (whose personal data
    must never be printed), and a scratch directory."""
    tmp = tmp_path_factory.mktemp("cli-errors")
    keys = tmp / "keys.json"
    generate_key_file(keys)
    settings = make_settings(database_url, key_file=keys, backup_dir=tmp / "backups",
                             pitr_dir=tmp / "pitr")
    box = Container(settings, database_url=database_url, keyring=load_keyring(settings))
    try:
        me = Actor(uuid.uuid4(), "admin")
        clinic = clinics.create_clinic(box.service_uow(me),
                                       ClinicCreate(name="Clinica Dos Erros")).id
        patients.register_patient(box.uow(clinic, me), PatientCreate(
            full_name=PATIENT_NAME, cpf=PATIENT_CPF))
    finally:
        box.close()
    env = {"NEONPRO_DATABASE_URL": database_url, "NEONPRO_KEY_FILE": str(keys),
           "NEONPRO_ENVIRONMENT": "test", "NEONPRO_BACKUP_DIR": str(tmp / "backups"),
           "NEONPRO_PITR_DIR": str(tmp / "pitr")}
    return env, clinic, tmp


@pytest.fixture(autouse=True)
def _keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    # in-process: keep the session's logging (the PII guard's DEBUG capture) as it is
    monkeypatch.setattr("neonpro.entrypoints.cli._common.configure_logging",
                        lambda *_a, **_k: None)


def _run(env: dict[str, str], argv: list[str]) -> Result:
    return CliRunner().invoke(app, argv, env=env, input="n\n")


def _assert_one_line_error(result: Result, argv: list[str]) -> None:
    shown = " ".join(argv)
    output = result.output
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.exit_code != 0, f"{shown}: exit 0\n{output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{shown}: raised {type(result.exception).__name__}\n{output}")
    assert "Traceback" not in output, f"{shown}: traceback\n{output}"
    assert len(lines) == 1, f"{shown}: {len(lines)} lines\n{output}"
    assert lines[0].startswith("error:"), f"{shown}: {output}"
    assert len(lines[0]) <= MAX_LINE, f"{shown}: {output}"
    _assert_no_personal_data(output, shown)


def _assert_no_personal_data(output: str, shown: str) -> None:
    digits = "".join(c for c in output if c.isdigit())
    assert PATIENT_CPF not in digits, f"{shown}: a CPF in the output"
    assert PATIENT_NAME.lower() not in output.lower(), f"{shown}: a name in the output"
    assert PATIENT_EMAIL not in output, f"{shown}: an e-mail in the output"


def test_the_walk_finds_the_commands_that_take_ids() -> None:
    names = {" ".join(path) for path, _ in ID_COMMANDS}
    # a sample of what must be there: the walk itself is what is tested
    assert {"lgpd erase", "lgpd export", "noshow evaluate", "token",
            "backup verify"} <= names


@pytest.mark.parametrize(("path", "command"), ID_COMMANDS,
                         ids=[" ".join(p) for p, _ in ID_COMMANDS])
def test_malformed_ids(world: tuple[dict[str, str], uuid.UUID, Path],
                       path: tuple[str, ...], command: click.Command) -> None:
    env, clinic, tmp = world
    ids = [p for p in command.params if _is_id(p)]
    typed = [MALFORMED, PATIENT_NAME, PATIENT_CPF, PATIENT_EMAIL]  # what one types wrongly
    for n, bad in enumerate(ids):
        values = {p.name: (str(clinic) if _is_clinic(p) else _unknown(p))
                  for p in ids if p.required and p.name}
        assert bad.name
        values[bad.name] = typed[n % len(typed)] if len(ids) > 1 else MALFORMED
        argv = _argv(path, command, values, tmp)
        _assert_one_line_error(_run(env, argv), argv)
        if len(ids) == 1:  # each personal value once where it is the only id
            for value in typed[1:]:
                argv = _argv(path, command, {**values, bad.name: value}, tmp)
                _assert_one_line_error(_run(env, argv), argv)


def test_usage_errors_never_repeat_what_was_typed(
        world: tuple[dict[str, str], uuid.UUID, Path]) -> None:
    """A CPF where an id was expected, an e-mail as --clinic, a name as an extra argument,
    an option made of a CPF: the error says what was wrong, never what was typed."""
    env, clinic, _tmp = world
    for argv in (["lgpd", "erase", PATIENT_CPF, "--clinic", str(clinic), "--yes"],
                 ["lgpd", "erase", str(uuid.uuid4()), "--clinic", PATIENT_EMAIL, "--yes"],
                 ["consent", "history", "--clinic", str(clinic), "--patient",
                  str(uuid.uuid4()), PATIENT_NAME],
                 ["consent", "history", f"--{PATIENT_CPF}", "x"],
                 [PATIENT_NAME]):
        result = _run(env, argv)
        assert result.exit_code == 2, (argv, result.output)
        _assert_one_line_error(result, argv)
        assert "paciente.dos.erros" not in result.output


@pytest.mark.parametrize(("path", "command"),
                         [(p, c) for p, c in ID_COMMANDS if any(map(_is_clinic, c.params))],
                         ids=[" ".join(p) for p, c in ID_COMMANDS
                              if any(map(_is_clinic, c.params))])
def test_unknown_clinic(world: tuple[dict[str, str], uuid.UUID, Path],
                        path: tuple[str, ...], command: click.Command) -> None:
    env, _clinic, tmp = world
    values = {p.name: _unknown(p) for p in command.params
              if p.name and _is_id(p) and (p.required or _is_clinic(p))}
    argv = _argv(path, command, values, tmp)
    _assert_one_line_error(_run(env, argv), argv)


def _required_objects(command: click.Command) -> bool:
    return any(_is_id(p) and p.required and not _is_clinic(p) for p in command.params)


@pytest.mark.parametrize(("path", "command"),
                         [(p, c) for p, c in ID_COMMANDS if _required_objects(c)],
                         ids=[" ".join(p) for p, c in ID_COMMANDS if _required_objects(c)])
def test_missing_object_in_a_real_clinic(world: tuple[dict[str, str], uuid.UUID, Path],
                                         path: tuple[str, ...],
                                         command: click.Command) -> None:
    env, clinic, tmp = world
    values = {p.name: (str(clinic) if _is_clinic(p) else _unknown(p))
              for p in command.params if p.name and _is_id(p) and p.required}
    if any(_is_clinic(p) for p in command.params):
        values.setdefault(next(p.name for p in command.params if _is_clinic(p) and p.name),
                          str(clinic))
    argv = _argv(path, command, values, tmp)
    _assert_one_line_error(_run(env, argv), argv)


def _optional_objects(command: click.Command) -> list[click.Parameter]:
    return [p for p in command.params if _is_id(p) and not p.required and not _is_clinic(p)]


@pytest.mark.parametrize(("path", "command"),
                         [(p, c) for p, c in ID_COMMANDS if _optional_objects(c)],
                         ids=[" ".join(p) for p, c in ID_COMMANDS if _optional_objects(c)])
def test_unknown_optional_ids(world: tuple[dict[str, str], uuid.UUID, Path],
                              path: tuple[str, ...], command: click.Command) -> None:
    """An unknown value of an optional id is refused in one line (a reference) or matches
    nothing (a filter); never a traceback."""
    env, clinic, tmp = world
    for optional in _optional_objects(command):
        values = {p.name: (str(clinic) if _is_clinic(p) else _unknown(p))
                  for p in command.params if p.name and _is_id(p) and p.required}
        for p in command.params:
            if _is_clinic(p) and p.name:
                values[p.name] = str(clinic)
        assert optional.name
        values[optional.name] = _unknown(optional)
        argv = _argv(path, command, values, tmp)
        result = _run(env, argv)
        if result.exit_code != 0:
            _assert_one_line_error(result, argv)
        else:
            assert result.exception is None, f"{argv}: {result.exception!r}"
            _assert_no_personal_data(result.output, " ".join(argv))


def test_an_unexpected_error_is_one_line_without_its_message() -> None:
    """A bug (an exception nothing expected) is "internal error", its class and where it
    was raised: its message may carry a value, so it is not printed."""
    probe = typer_app()

    @probe.command()
    def broken() -> None:
        raise ValueError(f"cannot parse {PATIENT_CPF}")

    @probe.command()
    def interrupted() -> None:
        raise KeyboardInterrupt

    result = CliRunner().invoke(probe, ["broken"])
    assert result.exit_code == 1
    [line] = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: internal error (ValueError at {__name__}:"), line
    assert PATIENT_CPF not in line
    stopped = CliRunner().invoke(probe, ["interrupted"])
    assert stopped.exit_code == 130
    assert [x for x in stopped.output.splitlines() if x.startswith("error:")] == [
        "error: interrupted"]
