"""What every CLI command shares: the container, clean errors, JSON output."""

from __future__ import annotations

import errno
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy.exc import SQLAlchemyError

from neonpro.adapters.db.embedded import EmbeddedError
from neonpro.bootstrap import Container
from neonpro.config import Settings
from neonpro.logs import configure_logging
from neonpro.redaction import redact_text

console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 1) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)  # one line, however long
    raise typer.Exit(code)


def os_error(exc: OSError) -> str:
    """One line for an operating-system error: what failed, and where (paths are no
    personal data); never a traceback."""
    reason = exc.strerror or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    hint = ": free some space and run it again" if exc.errno == errno.ENOSPC else ""
    return f"{reason.lower()}{where}{hint}"


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def container() -> Iterator[Container]:
    """A container for one command: closed (pools, embedded server) however it ends."""
    try:
        settings = Settings()
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        fail(f"invalid settings: {fields}")
    configure_logging(settings.log_level)
    previous = signal.signal(signal.SIGTERM, _on_signal)
    box = Container(settings)
    try:
        yield box
    except EmbeddedError as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
        fail(f"database error: {redact_text(detail[:300])}")
    except KeyboardInterrupt:
        fail("interrupted", 130)
    finally:
        box.close()
        signal.signal(signal.SIGTERM, previous)
