"""pytest plugin: fail the session when personal data used by the tests shows up in logs.

Load it with ``-p tests.pii_guard`` or ``pytest_plugins = ["tests.pii_guard"]``.

For the whole session it records

* the personal values the tests create: every valid CPF, CNS, e-mail and phone built
  (``Cpf``/``Cns``/``Email``/``Phone`` construction, ``parse`` included, so pydantic
  validators that captured ``parse`` at import time are covered too), the results of
  ``tests.valid.cpf``/``cns``, and every ``full_name`` of a ``PatientCreate`` /
  ``PatientUpdate``;
* what could carry them out: every log line rendered through the root logger (structlog
  and the standard library, with the production formatter, at DEBUG), the message of
  every ``DomainError`` constructed, and the stderr of every ``subprocess.run`` (the CLI's
  log output in e2e tests).

At the end it scans the second against the first; a hit is reported by kind and line,
with the value itself replaced by ``<LEAK>``, and the session exits with status 1.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import structlog

from neonpro.logs import build_formatter, configure_logging

LEAK = "<LEAK>"
MIN_NAME_LEN = 6
_MAX_RUNS = 5  # a formatted number spans at most 5 digit runs: +55 (11) 9 8765-4321
_MAX_LINE = 400
_CPF_LEN = 11
_CNS_LEN = 15
_PHONE_MIN_LEN = 10
_PHONE_MAX_LEN = 11

# Digit runs joined by short separators: 111.444.777-35, (11) 98765-4321, 144 0826 ...
_NUMBER_REGION = re.compile(r"[0-9]+(?:[ .()/+\-]{1,3}[0-9]+)*")
_DIGIT_RUN = re.compile(r"[0-9]+")
_EMAIL_TOKEN = re.compile(r"[^\s'\"<>()\[\]{},;:=]+@[^\s'\"<>()\[\]{},;:=]+")
_WORD = re.compile(r"\w+")


@dataclass
class Recorded:
    """Personal values seen during the session, in canonical form."""

    cpfs: set[str] = field(default_factory=set)
    cnss: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)  # lower-cased
    phones: set[str] = field(default_factory=set)  # national digits (10 or 11)
    names: set[str] = field(default_factory=set)

    def add(self, kind: str, value: object) -> None:
        if not isinstance(value, str) or not value:
            return
        digits = "".join(c for c in value if c in "0123456789")
        if kind == "cpf" and len(digits) == _CPF_LEN:
            self.cpfs.add(digits)
        elif kind == "cns" and len(digits) == _CNS_LEN:
            self.cnss.add(digits)
        elif kind == "email":
            self.emails.add(value.strip().lower())
        elif kind == "phone" and len(digits) >= _PHONE_MIN_LEN:
            national = digits[2:] if len(digits) > _PHONE_MAX_LEN else digits
            self.phones.add(national)
        elif kind == "name" and len(value.strip()) >= MIN_NAME_LEN:
            self.names.add(value.strip())


@dataclass(frozen=True)
class Leak:
    kind: str
    source: str
    line: str  # the offending text, with every leaked value replaced by <LEAK>

    def __str__(self) -> str:
        return f"[{self.kind}] in {self.source}: {self.line}"


@dataclass
class Captured:
    """Texts that must be free of personal data: (source, text)."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    messages: set[str] = field(default_factory=set)

    def all(self) -> Iterator[tuple[str, str]]:
        yield from self.texts
        for message in sorted(self.messages):
            yield "DomainError message", message


RECORDED = Recorded()
CAPTURED = Captured()
_state: dict[str, Any] = {"installed": False, "leaks": []}


# --- scanning ----------------------------------------------------------------------------


def _number_kind(digits: str, recorded: Recorded) -> str | None:
    if digits in recorded.cpfs:
        return "cpf"
    if digits in recorded.cnss:
        return "cns"
    if digits in recorded.phones or (digits.startswith("55") and digits[2:] in recorded.phones):
        return "phone"
    return None


def _number_hits(text: str, recorded: Recorded) -> Iterator[tuple[str, int, int]]:
    if not (recorded.cpfs or recorded.cnss or recorded.phones):
        return
    for region in _NUMBER_REGION.finditer(text):
        runs = list(_DIGIT_RUN.finditer(text, region.start(), region.end()))
        for i in range(len(runs)):
            digits = ""
            for j in range(i, min(i + _MAX_RUNS, len(runs))):
                digits += runs[j].group(0)
                kind = _number_kind(digits, recorded)
                if kind is not None:
                    yield kind, runs[i].start(), runs[j].end()


def _email_hits(text: str, recorded: Recorded) -> Iterator[tuple[str, int, int]]:
    if not recorded.emails or "@" not in text:
        return
    for token in _EMAIL_TOKEN.finditer(text):
        lowered = token.group(0).lower()
        for email in recorded.emails:
            if email in lowered:
                start = token.start() + lowered.index(email)
                yield "email", start, start + len(email)


def _name_hits(text: str, names_by_word: dict[str, list[str]]) -> Iterator[tuple[str, int, int]]:
    if not names_by_word:
        return
    words = set(_WORD.findall(text))
    for word in words & names_by_word.keys():
        for name in names_by_word[word]:
            start = text.find(name)
            while start != -1:
                end = start + len(name)
                before_ok = start == 0 or not (text[start - 1].isalnum() and name[0].isalnum())
                after_ok = end == len(text) or not (text[end].isalnum() and name[-1].isalnum())
                if before_ok and after_ok:
                    yield "name", start, end
                start = text.find(name, start + 1)


def _index_names(names: Iterable[str]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for name in names:
        first = _WORD.search(name)
        if first is not None:
            index.setdefault(first.group(0), []).append(name)
    return index


def _variants(text: str) -> list[str]:
    """The text, plus the string values of a JSON line (escapes decoded)."""
    out = [text]
    stripped = text.strip()
    if stripped.startswith("{") and "\\" in stripped:
        try:
            data = json.loads(stripped)
        except ValueError:
            return out
        out.extend(v for v in _json_strings(data))
    return out


def _json_strings(data: object) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _json_strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _json_strings(value)


def _mark(text: str, spans: list[tuple[int, int]]) -> str:
    out: list[str] = []
    last = 0
    for start, end in sorted(spans):
        if start < last:  # overlapping hit: already hidden
            last = max(last, end)
            continue
        out.append(text[last:start])
        out.append(LEAK)
        last = end
    out.append(text[last:])
    marked = "".join(out).replace("\n", "\\n")
    return marked if len(marked) <= _MAX_LINE else marked[:_MAX_LINE] + "..."


def find_leaks(texts: Iterable[tuple[str, str]], recorded: Recorded) -> list[Leak]:
    """Every (source, text) that contains a recorded value; the value is hidden in the report."""
    names_by_word = _index_names(recorded.names)
    leaks: list[Leak] = []
    seen: set[tuple[str, str]] = set()
    for source, raw in texts:
        for text in _variants(raw):
            hits = [
                *_number_hits(text, recorded),
                *_email_hits(text, recorded),
                *_name_hits(text, names_by_word),
            ]
            if not hits:
                continue
            marked = _mark(text, [(s, e) for _, s, e in hits])
            for kind in sorted({k for k, _, _ in hits}):
                if (kind, marked) not in seen:
                    seen.add((kind, marked))
                    leaks.append(Leak(kind, source, marked))
    return leaks


# --- recording ---------------------------------------------------------------------------


class _CaptureHandler(logging.Handler):
    """Keeps every rendered line (the production formatter, JSON) for the final scan."""

    def __init__(self, sink: Captured) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink
        self.setFormatter(build_formatter(json=True))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception as exc:  # noqa: BLE001 - record the failure, never the message
            line = f"<unformattable record from {record.name}: {type(exc).__name__}>"
        self.sink.texts.append((f"log line ({record.name})", line))


def _record_after_init(cls: type, kind: str, attribute: str) -> None:
    original: Callable[..., None] = cls.__post_init__  # type: ignore[attr-defined]

    @functools.wraps(original)
    def __post_init__(self: Any) -> None:  # noqa: N807
        original(self)
        RECORDED.add(kind, getattr(self, attribute))

    cls.__post_init__ = __post_init__  # type: ignore[attr-defined]


def _record_parse(cls: type, kind: str) -> None:
    original = cls.__dict__["parse"].__func__

    @functools.wraps(original)
    def parse(klass: type, raw: Any) -> Any:
        result = original(klass, raw)
        RECORDED.add(kind, raw)  # the raw form too: "(11) 98765-4321", "Maria@Example.COM"
        return result

    cls.parse = classmethod(parse)  # type: ignore[attr-defined]


def _record_model_names(model: Any) -> None:
    original_init = model.__init__
    original_validate = model.model_validate.__func__

    @functools.wraps(original_init)
    def __init__(self: Any, /, **data: Any) -> None:  # noqa: N807
        original_init(self, **data)
        RECORDED.add("name", getattr(self, "full_name", None))

    def model_validate(cls: Any, obj: Any, *args: Any, **kwargs: Any) -> Any:
        result = original_validate(cls, obj, *args, **kwargs)
        RECORDED.add("name", getattr(result, "full_name", None))
        return result

    model.__init__ = __init__
    model.model_validate = classmethod(model_validate)


def _record_domain_errors() -> None:
    from neonpro.domain.errors import DomainError  # noqa: PLC0415

    original = DomainError.__init__

    @functools.wraps(original)
    def __init__(self: DomainError, message: str) -> None:  # noqa: N807
        original(self, message)
        CAPTURED.messages.add(str(self.message))

    DomainError.__init__ = __init__  # type: ignore[method-assign]


def _record_test_values() -> None:
    from tests import valid  # noqa: PLC0415

    for kind in ("cpf", "cns"):
        original = getattr(valid, kind)

        def make(fn: Callable[[int], str], k: str) -> Callable[[int], str]:
            @functools.wraps(fn)
            def wrapper(n: int) -> str:
                value = fn(n)
                RECORDED.add(k, value)
                return value

            return wrapper

        setattr(valid, kind, make(original, kind))


def _record_subprocess_stderr() -> None:
    original = subprocess.run

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        err = getattr(result, "stderr", None)
        if isinstance(err, bytes):
            err = err.decode("utf-8", "replace")
        if isinstance(err, str) and err:
            argv = result.args if isinstance(result.args, list | tuple) else [result.args]
            name = " ".join(str(a).rsplit("/", 1)[-1] for a in argv[:3])
            CAPTURED.texts.extend((f"stderr of `{name}`", line) for line in err.splitlines())
        return result

    subprocess.run = run


def install() -> None:
    """Wrap the constructors and hooks above (once per process)."""
    if _state["installed"]:
        return
    _state["installed"] = True
    from neonpro.domain import values  # noqa: PLC0415
    from neonpro.domain.schemas.patient import PatientCreate, PatientUpdate  # noqa: PLC0415

    for cls, kind, attribute in (
        (values.Cpf, "cpf", "digits"),
        (values.Cns, "cns", "digits"),
        (values.Email, "email", "address"),
        (values.Phone, "phone", "digits"),
    ):
        _record_after_init(cls, kind, attribute)
        _record_parse(cls, kind)
    _record_model_names(PatientCreate)
    _record_model_names(PatientUpdate)
    _record_domain_errors()
    _record_test_values()
    _record_subprocess_stderr()


def start_capture() -> None:
    """Production logging at DEBUG, plus a root handler keeping every rendered line."""
    configure_logging("DEBUG", json=True)
    # Loggers stay uncached so that structlog.testing.capture_logs keeps working in tests.
    structlog.configure(cache_logger_on_first_use=False)
    root = logging.getLogger()
    if not any(isinstance(h, _CaptureHandler) for h in root.handlers):
        root.addHandler(_CaptureHandler(CAPTURED))


# --- hooks -------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    install()


def pytest_sessionstart(session: pytest.Session) -> None:
    start_capture()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = find_leaks(CAPTURED.all(), RECORDED)
    _state["leaks"] = leaks
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            sys.stderr.write(_report(leaks))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    leaks: list[Leak] = _state["leaks"]
    texts = len(CAPTURED.texts) + len(CAPTURED.messages)
    if not leaks:
        terminalreporter.write_line(
            f"pii guard: no leak in {texts} log lines and messages "
            f"({len(RECORDED.cpfs)} CPF, {len(RECORDED.cnss)} CNS, {len(RECORDED.emails)} "
            f"e-mails, {len(RECORDED.phones)} phones, {len(RECORDED.names)} names recorded)"
        )
        return
    terminalreporter.section("pii guard: personal data leaked", sep="=", red=True, bold=True)
    for line in _report(leaks).splitlines():
        terminalreporter.write_line(line)


def _report(leaks: list[Leak]) -> str:
    return "".join(f"{leak}\n" for leak in leaks) + f"pii guard: {len(leaks)} leak(s)\n"
