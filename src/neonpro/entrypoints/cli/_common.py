"""What every CLI command shares: the container, clean errors, JSON output.

Errors are answered here, once for every command (:class:`CliGroup`): a malformed
argument, an unknown clinic, a missing object, a database or operating-system error is
one line on standard error (``error: ...``) and a non-zero exit, never a traceback and
never a personal value.
"""

from __future__ import annotations

import errno
import json
import signal
import sys
import sysconfig
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from neonpro.domain.errors import DomainError

if TYPE_CHECKING:
    from neonpro.bootstrap import Container
    from neonpro.config import Settings

# Only what ``neonpro --help`` needs is imported here: the database, the settings, the
# crypto and the logging stack are imported by the functions that use them, so help and
# usage errors answer at once (docs/operations.md, "The command line").
console = Console(stderr=True)
out = Console()
USAGE_EXIT = 2  # click's exit status for a usage error
CLINIC_PARAMETERS = ("clinic", "clinic_id")


def fail(message: str, code: int = 1) -> NoReturn:
    # one line, however long; the message is text, never markup ("[...]" stays as it is)
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def os_error(exc: OSError) -> str:
    """One line for an operating-system error: what failed, and where (paths are no
    personal data); never a traceback."""
    reason = exc.strerror or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    hint = ": free some space and run it again" if exc.errno == errno.ENOSPC else ""
    return f"{reason.lower()}{where}{hint}"


def durations(seconds: Mapping[str, float]) -> str:
    """Timings as a line to read (``backup 1.2 s, restore.data 0.4 s``), not a dict's repr."""
    return ", ".join(f"{step} {value:.1f} s" for step, value in seconds.items()) or "-"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def configure_logging(level: str | int) -> None:
    """The process's logging (neonpro.logs), set up when a command starts its work."""
    from neonpro.logs import configure_logging as configure

    configure(level)


def _log() -> Any:
    import structlog

    return structlog.get_logger(__name__)


@contextmanager
def container() -> Iterator[Container]:
    """A container for one command: closed (pools, embedded server) however it ends."""
    from pydantic import ValidationError

    from neonpro.bootstrap import Container
    from neonpro.config import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        fail(f"invalid settings: {fields}")
    configure_logging(settings.log_level)
    _warn_development_keys(settings)
    previous = signal.signal(signal.SIGTERM, _on_signal)
    box = Container(settings)
    try:
        _check_clinic(box)
        yield box
    finally:
        box.close()
        signal.signal(signal.SIGTERM, previous)


def _warn_development_keys(settings: Settings) -> None:
    """Say it once a run, in plain words, when the keys are the generated development
    ones (the key ring's own log line is then not repeated)."""
    from neonpro.adapters.crypto import announce_development_keys, development_key_file

    path = development_key_file(settings)
    warning = announce_development_keys(path) if path is not None else None
    if warning is not None:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False,
                      soft_wrap=True)


@contextmanager
def context(label: str) -> Iterator[None]:
    """Name what a domain error raised inside was about (``clinic <id>``, say): CliGroup
    answers it as ``error: <label>: <message>``, exit 1, like any other."""
    try:
        yield
    except DomainError as exc:
        exc.message = f"{label}: {exc.message}"
        raise


def _check_clinic(box: Container) -> None:
    """The clinic a command names (its ``--clinic``) must exist: checked once here for
    every command, so an unknown clinic is "clinic ... not found" rather than an empty
    answer, a refusal of the database or a traceback further on."""
    ctx = click.get_current_context(silent=True)
    params = ctx.params if ctx is not None else {}
    clinic = next((params[n] for n in CLINIC_PARAMETERS if params.get(n) is not None), None)
    if not isinstance(clinic, uuid.UUID):
        return
    from neonpro.domain.actors import SystemActors

    with box.service_uow(SystemActors.CLI) as tx:
        tx.clinics.get(clinic)  # NotFound: answered by CliGroup


def _bounds(kind: click.IntRange | click.FloatRange) -> str:
    """A range as click's help says it (``1<=x<=500``, ``x>=1``), from its public bounds."""
    if kind.min is None:
        return f"x{'<' if kind.max_open else '<='}{kind.max}"
    if kind.max is None:
        return f"x{'>' if kind.min_open else '>='}{kind.min}"
    return (f"{kind.min}{'<' if kind.min_open else '<='}x"
            f"{'<' if kind.max_open else '<='}{kind.max}")


def _usage(exc: click.UsageError) -> str:
    """What was wrong with a command line, never what was typed: a CPF given where an id
    was expected, an e-mail as ``--clinic``, a name as an extra argument."""
    from neonpro.redaction import redact_text

    if isinstance(exc, click.MissingParameter):
        return redact_text(exc.format_message())  # names our parameter, holds no input
    if isinstance(exc, click.BadParameter):
        param = exc.param
        name = (param.opts[0] if isinstance(param, click.Option) and param.opts
                else param.human_readable_name if param is not None else "a parameter")
        kind = getattr(param, "type", None)
        expected = getattr(kind, "name", None)
        if isinstance(kind, click.IntRange | click.FloatRange):
            expected = f"{expected} {_bounds(kind)}"
        return f"invalid value for {name}" + (f" (expected {expected})" if expected else "")
    if isinstance(exc, click.NoSuchOption):
        return "no such option"
    message = exc.format_message()
    for start, said in (("No such command", "no such command"),
                        ("Got unexpected extra argument", "unexpected extra arguments")):
        if message.startswith(start):
            return said
    return "invalid usage"


def explain(exc: BaseException) -> tuple[str, int] | None:  # noqa: PLR0911  (one per kind)
    """The one-line message and exit status for an error a command let through, or None
    for an exit that is not an error (``typer.Exit``, click's own)."""
    from neonpro.redaction import redact_text

    if isinstance(exc, click.exceptions.Exit | click.Abort | click.exceptions.NoArgsIsHelpError):
        return None
    if isinstance(exc, click.UsageError):
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        return _usage(exc) + where, exc.exit_code
    if isinstance(exc, click.ClickException):
        return redact_text(exc.format_message()), exc.exit_code
    if isinstance(exc, DomainError):
        return exc.message, 1
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    # the kinds below come from the database and crypto stacks (imported here, not at start)
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from neonpro.adapters.crypto import KeyConfigError
    from neonpro.adapters.db.embedded import EmbeddedError
    from neonpro.adapters.db.errors import describe, summary

    if isinstance(exc, EmbeddedError | KeyConfigError):  # the text says what and which
        return str(exc), 1
    sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
    if isinstance(exc, DBAPIError) and sqlstate and not sqlstate.startswith("08"):
        # the statement's fault: what and where, never the driver's text (it carries values)
        _log().warning("db_error", error="unhandled", **describe(exc))
        return f"database error: {summary(exc)}", 1
    if isinstance(exc, SQLAlchemyError):  # cannot connect, and the like: the text says why
        detail = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        return f"database error: {redact_text(detail[:300])}", 1
    if isinstance(exc, OSError):
        return os_error(exc), 1
    return None


class CliGroup(TyperGroup):
    """A command group whose commands answer every error in one line (:func:`explain`);
    an error nothing expected is "internal error" with its class and where it was raised,
    its traceback in the log at DEBUG only."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (Exception, KeyboardInterrupt) as exc:
            if isinstance(exc, click.exceptions.Exit | click.Abort
                          | click.exceptions.NoArgsIsHelpError):
                raise
            answer = explain(exc)
            if answer is None:
                where = _raised_at(exc)
                # no traceback at ERROR: it would reach the terminal with the log lines
                log = _log()
                log.error("cli_internal_error", error=type(exc).__name__,  # noqa: TRY400
                          where=where)
                log.debug("cli_internal_error_traceback", exc_info=exc)
                answer = (f"internal error ({type(exc).__name__} at {where}); the log "
                          "at NEONPRO_LOG_LEVEL=DEBUG has the traceback", 1)
            fail(*answer)


_LIBRARY_DIRS = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib",
                                                            "platlib")})


def _raised_at(exc: BaseException) -> str:
    """``module:line`` of the innermost frame of ours that raised ``exc`` (neonpro's, or a
    script's; not a library's, not this module's)."""
    tb, found = exc.__traceback__, "?"
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        ours = module.startswith("neonpro.") or not tb.tb_frame.f_code.co_filename.startswith(
            _LIBRARY_DIRS)
        if ours and module != __name__:
            found = f"{module}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def typer_app(**options: Any) -> typer.Typer:
    """A command group of the ``neonpro`` CLI (errors answered by :class:`CliGroup`)."""
    return typer.Typer(cls=CliGroup, **options)
