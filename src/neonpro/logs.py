"""structlog configuration: JSON lines (or console in a terminal), configured at the edges.

Every line, from structlog or from the standard library (alembic, uvicorn, SQLAlchemy,
psycopg), goes through one root handler whose ``ProcessorFormatter`` runs the same
processors: context (request id, clinic id, actor), level, logger name, timestamp, the
rendered exception, then the PII redaction of ``neonpro.redaction``, then the renderer.
See ``docs/logging.md``.
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, Final

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from neonpro.domain.actors import Actor
from neonpro.redaction import REDACTED, redact_event

__all__ = [
    "NeonproLogHandler",
    "bind_log_context",
    "build_formatter",
    "configure_logging",
    "log_context",
    "new_request_id",
]

# Loggers whose positional arguments are bound SQL parameters or result rows (echo mode).
_PARAMETER_LOGGERS: Final = ("sqlalchemy.engine",)


def _drop_library_args(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Re-render SQLAlchemy engine messages without their parameters and rows.

    ``ProcessorFormatter`` (with ``pass_foreign_args``) hands the record's arguments in
    ``positional_args``; non-scalar ones (parameter dicts, ``_repr_params``, rows) are
    replaced before anything else sees the message.
    """
    args = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if not args or record is None or not record.name.startswith(_PARAMETER_LOGGERS):
        return event_dict
    scalars = (str, int, float)
    if isinstance(args, Mapping):
        event_dict["event"] = f"{record.msg} [arguments: {REDACTED}]"
        return event_dict
    safe = tuple(a if isinstance(a, scalars) else REDACTED for a in args)
    try:
        event_dict["event"] = str(record.msg) % safe
    except (TypeError, ValueError):
        event_dict["event"] = f"{record.msg} [arguments: {REDACTED}]"
    return event_dict


def _context_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def build_formatter(*, json: bool = True) -> structlog.stdlib.ProcessorFormatter:
    """The formatter of the root handler: stdlib records get the same chain as structlog's.

    structlog events arrive already redacted (the redactor is in structlog's own chain);
    foreign records run ``foreign_pre_chain``, which ends with ``format_exc_info`` and the
    redactor, so tracebacks are rendered to text and then redacted, before the renderer.
    """
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *_context_processors(),
            _drop_library_args,
            structlog.processors.format_exc_info,
            redact_event,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        pass_foreign_args=True,
    )


class NeonproLogHandler(logging.Handler):
    """Writes formatted lines to ``stream``, or to the current ``sys.stderr`` when None.

    Resolving ``sys.stderr`` at each write keeps working when it is swapped (pytest's
    capture, a CLI runner). A failure to format never prints the record's message or
    arguments (the standard ``handleError`` would, unredacted).
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__()
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = self._stream if self._stream is not None else sys.stderr
            stream.write(line + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:  # noqa: BLE001 - logging must never break the caller
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - stdlib name
        if logging.raiseExceptions:
            error = sys.exc_info()[1]
            sys.stderr.write(
                f"--- logging error: {type(error).__name__} in a record of {record.name!r}"
                f" at {record.pathname}:{record.lineno} (message withheld)\n"
            )


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.strip().upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(
    level: str | int = "INFO", *, json: bool | None = None, stream: IO[str] | None = None
) -> None:
    """Configure structlog and the standard library, from an entrypoint; idempotent.

    ``json=None`` chooses JSON unless the output is a terminal. ``stream`` defaults to
    the current ``sys.stderr``. Calling again replaces the previous handler: handlers
    added by others (pytest's, a test's) are left alone.
    """
    number = _level_number(level)
    out = stream if stream is not None else sys.stderr
    is_tty = bool(getattr(out, "isatty", lambda: False)())
    use_json = (not is_tty) if json is None else json
    structlog.configure(
        processors=[
            *_context_processors(),
            structlog.processors.format_exc_info,
            redact_event,  # after format_exc_info, before the renderer (in the formatter)
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(number),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, NeonproLogHandler)]:
        root.removeHandler(old)
    handler = NeonproLogHandler(stream)
    handler.setFormatter(build_formatter(json=use_json))
    root.addHandler(handler)
    root.setLevel(number)
    # Alembic announces every migration context at INFO; health checks open one each time.
    logging.getLogger("alembic").setLevel(logging.WARNING)


# --- context -----------------------------------------------------------------------------


def new_request_id() -> str:
    """A fresh request id (32 hex characters)."""
    return uuid.uuid4().hex


def _context_values(
    request_id: str | None,
    clinic_id: uuid.UUID | str | None,
    actor: Actor | None,
    actor_id: uuid.UUID | str | None,
) -> dict[str, str]:
    values: dict[str, str] = {}
    if actor is not None:
        values["actor_id"] = str(actor.id)
        values["actor_role"] = actor.role
        if actor.request_id is not None and request_id is None:
            request_id = actor.request_id
    if actor_id is not None:
        values["actor_id"] = str(actor_id)
    if request_id is not None:
        values["request_id"] = request_id
    if clinic_id is not None:
        values["clinic_id"] = str(clinic_id)
    return values


def bind_log_context(
    *,
    request_id: str | None = None,
    clinic_id: uuid.UUID | str | None = None,
    actor: Actor | None = None,
    actor_id: uuid.UUID | str | None = None,
) -> None:
    """Bind ids to every later line of this context (thread / asyncio task).

    Only ids: never bind personal data here (it would be redacted anyway).
    Undo with ``structlog.contextvars.clear_contextvars()`` or use ``log_context``.
    """
    structlog.contextvars.bind_contextvars(
        **_context_values(request_id, clinic_id, actor, actor_id)
    )


@contextmanager
def log_context(
    *,
    request_id: str | None = None,
    clinic_id: uuid.UUID | str | None = None,
    actor: Actor | None = None,
    actor_id: uuid.UUID | str | None = None,
) -> Iterator[None]:
    """Bind ids for the duration of a ``with`` block, restoring the previous ones after."""
    values: dict[str, Any] = _context_values(request_id, clinic_id, actor, actor_id)
    with structlog.contextvars.bound_contextvars(**values):
        yield
