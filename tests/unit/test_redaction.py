"""PII redaction of log lines (structlog and stdlib) and the session's PII guard."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog
from sqlalchemy.exc import IntegrityError

from neonpro.domain.actors import Actor
from neonpro.domain.schemas.patient import PatientCreate
from neonpro.logs import (
    NeonproLogHandler,
    build_formatter,
    configure_logging,
    log_context,
    new_request_id,
)
from neonpro.redaction import (
    REDACTED,
    is_personal_key,
    redact_event,
    redact_text,
    redact_value,
)
from tests.pii_guard import LEAK, Recorded, find_leaks
from tests.valid import cns, cpf

CPF = "11144477735"
CPF_MASKED = "111.444.777-35"
CNS = "144082627260004"


# --- free text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"cpf {CPF_MASKED} found", "cpf [CPF] found"),
        (f"cpf={CPF}", "cpf=[CPF]"),
        (f"cpf:{cpf(7)}.", "cpf:[CPF]."),
        (f"cns {CNS}", "cns [CNS]"),
        ("cns 144 0826 2726 0004", "cns [CNS]"),
        (f"provisional {cns(3)}", "provisional [CNS]"),
        ("mail Maria.Silva+x@Example.COM.br, ok", "mail [EMAIL], ok"),
        ("from o'brien@clinica.com.br", "from [EMAIL]"),
        ("tel (11) 98765-4321", "tel [PHONE]"),
        ("tel 11987654321", "tel [PHONE]"),
        ("tel +55 11 98765-4321", "tel [PHONE]"),
        ("tel +55 (11) 9 8765-4321", "tel [PHONE]"),
        ("tel 5511987654321", "tel [PHONE]"),
        ("landline (81) 3333-4444", "landline [PHONE]"),
        ("url postgresql://app:s3cret@db:5432/x", f"url postgresql://app:{REDACTED}@db:5432/x"),
    ],
)
def test_personal_data_in_text_is_replaced(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "cpf with bad check digits 11144477736",
        "all equal 11111111111",
        "fifteen digits that are no CNS 123456789012345",
        "request 550e8400-e29b-41d4-a716-446655440000",
        "clinic 12300791-9000-4000-8000-000000000000",
        "at 2026-11-27T12:45:05.123456+00:00",
        "order PED-20261127-12345678901",
        "epoch 1732712345 and ms 1732712345678",
        "hex deadbeef12300791900cafe",
        "phone-like but no DDD (01) 1234-5678",
        "cnpj 11.222.333/0001-81",
        "port 5432 pid 123456 took 0.0123s",
        "postgresql://postgres@127.0.0.1:5432/postgres",
    ],
)
def test_ids_numbers_and_timestamps_are_kept(text: str) -> None:
    assert redact_text(text) == text


def test_text_without_digits_or_at_takes_the_fast_path() -> None:
    text = "patient_registered with a long message but nothing personal in it"
    assert redact_text(text) is text


def test_database_error_text() -> None:
    text = (
        "(psycopg.errors.UniqueViolation) duplicate key value violates unique constraint\n"
        "DETAIL:  Key (clinic_id, search_name)=(abc, ana souza) already exists.\n"
        "[SQL: INSERT INTO patients (full_name) VALUES (%(full_name)s)]\n"
        "[parameters: {'full_name': 'Ana Souza', 'notes': 'sem alergias'}]\n"
        "(Background on this error at: https://sqlalche.me/e/20/gkpj)"
    )
    out = redact_text(text)
    assert "ana souza" not in out.lower()
    assert "alergias" not in out
    assert f"Key (clinic_id, search_name)=({REDACTED}) already exists." in out
    assert f"[parameters: {REDACTED}]\n(Background" in out
    assert "[SQL: INSERT INTO patients" in out
    row = "DETAIL:  Failing row contains (1, Ana Souza, null)."
    assert redact_text(row) == f"DETAIL:  Failing row contains ({REDACTED})."
    bad = 'invalid input syntax for type uuid: "Ana Souza"'
    assert redact_text(bad) == f'invalid input syntax for type uuid: "{REDACTED}"'


# --- structured values -------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["full_name", "Name", "email", "phone", "phone_primary", "cpf", "cns", "rg", "address_line1",
     "city", "birth_date", "notes", "internal_notes", "chief_complaint", "emergency_contact_phone",
     "dpo_name", "dpo_email", "password", "password_hash", "token", "Authorization"],
)
def test_personal_keys(key: str) -> None:
    assert is_personal_key(key)


@pytest.mark.parametrize("key", ["event", "clinic_id", "request_id", "constraint", "sqlstate",
                                 "error", "ip_address", "count"])
def test_other_keys(key: str) -> None:
    assert not is_personal_key(key)


def test_personal_keys_are_redacted_recursively() -> None:
    pid = uuid.uuid4()
    value = {
        "patient": {
            "id": pid,
            "full_name": "Ana Souza",
            "given_names": ["Ana"],
            "contacts": [{"phone_mobile": "(11) 98765-4321", "kind": "mobile"}],
            "address": {"street": "Rua A", "city": "Recife"},
            "emergency_contact_name": "Bia Souza",
            "preferred_name": None,
        },
        "free": f"text with {CPF}",
        "tuple": ("x", "ana@x.com"),
        "big": int(CPF),
        "small": 42,
    }
    out = redact_value(value)
    patient = out["patient"]
    assert patient["id"] == pid
    assert patient["full_name"] == REDACTED
    assert patient["given_names"] == REDACTED
    assert patient["contacts"] == [{"phone_mobile": REDACTED, "kind": "mobile"}]
    assert patient["address"] == REDACTED
    assert patient["emergency_contact_name"] == REDACTED
    assert patient["preferred_name"] is None
    assert out["free"] == "text with [CPF]"
    assert out["tuple"] == ("x", "[EMAIL]")
    assert out["big"] == "[CPF]"
    assert out["small"] == 42
    assert value["patient"]["full_name"] == "Ana Souza"  # the input is not changed


def test_models_and_objects_are_redacted() -> None:
    model = PatientCreate(full_name="Ana Souza", cpf=CPF_MASKED)  # type: ignore[call-arg]
    out = redact_value(model)
    assert out["full_name"] == REDACTED
    assert out["cpf"] == REDACTED
    assert CPF not in redact_value(ValueError(f"bad {CPF}"))


def test_redact_event_processor() -> None:
    event = {"event": f"lookup {CPF_MASKED}", "full_name": "Ana", "count": 3,
             "timestamp": "2026-11-27T12:00:00Z", "level": "info"}
    assert redact_event(None, "info", event) == {
        "event": "lookup [CPF]", "full_name": REDACTED, "count": 3,
        "timestamp": "2026-11-27T12:00:00Z", "level": "info",
    }


# --- configured logging ------------------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """configure_logging to a StringIO at DEBUG; the session's configuration comes back after."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    alembic_level = logging.getLogger("alembic").level
    buffer = io.StringIO()
    configure_logging("debug", json=True, stream=buffer)
    try:
        yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("alembic").setLevel(alembic_level)


def test_structlog_line_is_json_and_redacted(logged: Callable[[], list[dict[str, Any]]]) -> None:
    structlog.get_logger("neonpro.test").info(
        f"patient {CPF_MASKED} found", email="ana@x.com", phone_primary="11987654321",
        note=f"call (11) 98765-4321 or ana@x.com, cns {CNS}", clinic_id=str(uuid.UUID(int=7)),
    )
    [line] = logged()
    assert line["event"] == "patient [CPF] found"
    assert line["email"] == REDACTED
    assert line["phone_primary"] == REDACTED
    assert line["note"] == "call [PHONE] or [EMAIL], cns [CNS]"
    assert line["clinic_id"] == str(uuid.UUID(int=7))
    assert line["level"] == "info"
    assert line["logger"] == "neonpro.test"
    assert "timestamp" in line


def test_exception_text_is_redacted(logged: Callable[[], list[dict[str, Any]]]) -> None:
    try:
        raise ValueError(f"no patient with cpf {CPF_MASKED} and e-mail ana@x.com")  # noqa: TRY301
    except ValueError:
        structlog.get_logger("neonpro.test").exception("lookup_failed")
    [line] = logged()
    assert "Traceback" in line["exception"]
    assert "ValueError: no patient with cpf [CPF] and e-mail [EMAIL]" in line["exception"]
    assert CPF_MASKED not in json.dumps(line)
    assert "ana@x.com" not in json.dumps(line)


def test_sqlalchemy_parameters_are_stripped(logged: Callable[[], list[dict[str, Any]]]) -> None:
    orig = Exception(
        'duplicate key value violates unique constraint "uq"\n'
        "DETAIL:  Key (clinic_id, email)=(x, ana@x.com) already exists."
    )
    error = IntegrityError(
        "INSERT INTO patients (full_name, cpf) VALUES (%(full_name)s, %(cpf)s)",
        {"full_name": "Ana Souza", "cpf": CPF}, orig,
    )
    try:
        raise error
    except IntegrityError:
        structlog.get_logger("neonpro.test").exception("db_failed")
        logging.getLogger("sqlalchemy.pool").exception("stdlib_db_failed")
    lines = logged()
    assert len(lines) == 2
    for line in lines:
        assert f"[parameters: {REDACTED}]" in line["exception"]
        assert f"Key (clinic_id, email)=({REDACTED}) already exists." in line["exception"]
        assert "Ana Souza" not in json.dumps(line)
        assert CPF not in json.dumps(line)


def test_stdlib_logging_goes_through_the_redactor(
    logged: Callable[[], list[dict[str, Any]]],
) -> None:
    logging.getLogger("x").warning("cpf %s", CPF_MASKED)
    engine = logging.getLogger("sqlalchemy.engine.Engine")
    engine.setLevel(logging.INFO)  # what create_engine(echo=True) does
    try:
        engine.info("[%s] %r", "generated in 0.0001s", {"full_name": "Ana Souza"})
    finally:
        engine.setLevel(logging.NOTSET)
    logging.getLogger("alembic.runtime.migration").info("Context impl PostgresqlImpl.")  # muted
    first, second = logged()
    assert first["event"] == "cpf [CPF]"
    assert first["level"] == "warning"
    assert first["logger"] == "x"
    assert second["event"] == f"[generated in 0.0001s] '{REDACTED}'"
    assert "Ana Souza" not in json.dumps(second)


def test_stdlib_line_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging("INFO", json=True)
        logging.getLogger("x").warning("cpf %s", CPF_MASKED)
    finally:
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert json.loads(err.splitlines()[-1])["event"] == "cpf [CPF]"
    assert CPF_MASKED not in err


def test_a_broken_record_never_prints_its_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    buffer = io.StringIO()
    handler = NeonproLogHandler(buffer)
    handler.setFormatter(build_formatter(json=True))
    record = logging.getLogger("x").makeRecord(
        "x", logging.WARNING, __file__, 1, "cpf %s %s", (CPF,), None  # one argument missing
    )
    handler.handle(record)
    err = capsys.readouterr().err
    assert "logging error: TypeError" in err
    assert CPF not in err
    assert buffer.getvalue() == ""


def test_context_is_bound(logged: Callable[[], list[dict[str, Any]]]) -> None:
    clinic = uuid.uuid4()
    actor = Actor(uuid.uuid4(), "admin", request_id="req-1")
    request_id = new_request_id()
    with log_context(request_id=request_id, clinic_id=clinic, actor=actor):
        structlog.get_logger("neonpro.test").info("inside")
        logging.getLogger("uvicorn.error").warning("stdlib inside")
    structlog.get_logger("neonpro.test").info("outside")
    inside, stdlib, outside = logged()
    for line in (inside, stdlib):
        assert line["request_id"] == request_id
        assert line["clinic_id"] == str(clinic)
        assert line["actor_id"] == str(actor.id)
        assert line["actor_role"] == "admin"
    assert "request_id" not in outside
    assert "clinic_id" not in outside


def test_configure_logging_is_idempotent(logged: Callable[[], list[dict[str, Any]]]) -> None:
    buffer = io.StringIO()
    configure_logging("INFO", json=False, stream=buffer)
    configure_logging("INFO", json=False, stream=buffer)
    root = logging.getLogger()
    assert sum(isinstance(h, NeonproLogHandler) for h in root.handlers) == 1
    assert root.level == logging.INFO
    assert logging.getLogger("alembic").getEffectiveLevel() == logging.WARNING
    structlog.get_logger("neonpro.test").debug("hidden")
    structlog.get_logger("neonpro.test").warning("console", email="ana@x.com")
    out = buffer.getvalue()
    assert "hidden" not in out
    assert "console" in out
    assert "ana@x.com" not in out
    assert REDACTED in out
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("LOUD")


# --- the PII guard -----------------------------------------------------------------------


def test_guard_reports_a_recorded_cpf() -> None:
    recorded = Recorded()
    recorded.add("cpf", cpf(11))
    masked = f"{cpf(11)[:3]}.{cpf(11)[3:6]}.{cpf(11)[6:9]}-{cpf(11)[9:]}"
    lines = [
        ("log line (x)", '{"event": "clean line", "n": 123}'),
        ("log line (x)", f'{{"event": "patient {masked} saved"}}'),
        ("log line (y)", f"bare {cpf(11)} too"),
    ]
    leaks = find_leaks(lines, recorded)
    assert [(leak.kind, leak.source) for leak in leaks] == [
        ("cpf", "log line (x)"), ("cpf", "log line (y)"),
    ]
    assert leaks[0].line == f'{{"event": "patient {LEAK} saved"}}'
    assert all(cpf(11) not in str(leak) and masked not in str(leak) for leak in leaks)


def test_guard_reports_every_kind() -> None:
    recorded = Recorded()
    recorded.add("cns", cns(5))
    recorded.add("email", "Maria@Example.com")
    recorded.add("phone", "(11) 98765-4321")
    recorded.add("name", "Paciente 1")
    recorded.add("name", "Ana")  # shorter than 6: not scanned
    lines = [
        ("a", f"cns {cns(5)}"),
        ("b", "mail maria@example.com."),
        ("c", "call +55 11 98765-4321"),
        ("d", "name Paciente 1 saved"),
        ("e", "Paciente 10 and Ana are other people"),
        ("f", '{"event": "Paciente\\u00201"}'),
    ]
    kinds = {(leak.source, leak.kind) for leak in find_leaks(lines, recorded)}
    assert kinds == {("a", "cns"), ("b", "email"), ("c", "phone"), ("d", "name"), ("f", "name")}


@pytest.mark.parametrize("text", [
    "KeyError('ana.lima@exemplo.test')", 'ValueError("ana.lima@exemplo.test")',
    "['ana.lima@exemplo.test']", "('ana.lima@exemplo.test',)", "{'e': 'ana.lima@exemplo.test'}",
    "<ana.lima@exemplo.test>",
])
def test_e_mails_inside_quotes_and_brackets_are_redacted(text: str) -> None:
    assert "ana.lima" not in redact_text(text)
