"""``neonpro --help`` and every group's ``--help`` load none of the heavy stacks (issue 20,
item 3): the database, the settings, the crypto, the web framework and the like are imported
by the commands that use them, so help and usage answer at once (0.2 s here, 2.2-2.7 s
before; docs/operations.md). Timing is not asserted: what is imported is.

Each case runs in a fresh interpreter, as the console script does, and reports the modules
it ended with.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import typer

from neonpro.entrypoints.cli.app import app

# top-level packages (or neonpro modules) that `--help` must not import
HEAVY = ("sqlalchemy", "psycopg", "psycopg_pool", "alembic", "fastapi", "starlette", "uvicorn",
         "pydantic", "pydantic_settings", "cryptography", "argon2", "jwt", "fhir", "sklearn",
         "numpy", "structlog", "neonpro.bootstrap", "neonpro.config", "neonpro.logs",
         "neonpro.adapters", "neonpro.services.auth", "neonpro.queries.export")
MARK = "--modules--"
SCRIPT = f"""
import json, sys
from neonpro.entrypoints.cli import main
sys.argv = ["neonpro", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print({MARK!r} + json.dumps(sorted(sys.modules)))
"""


def _groups() -> list[list[str]]:
    """Every command group, and one plain command, as a user asks for their help."""
    top = typer.main.get_command(app)
    assert isinstance(top, typer.core.TyperGroup)
    found = [[name] for name, command in sorted(top.commands.items())
             if isinstance(command, typer.core.TyperGroup)]
    return [*found, ["lgpd", "policies"], ["token"]]


def _loaded(*args: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True,
                          text=True, timeout=60, check=False)
    assert MARK in done.stdout, done.stderr
    help_text, _, modules = done.stdout.partition(MARK)
    assert "Usage" in help_text or "Usage" in done.stderr
    return json.loads(modules)


def _heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]


@pytest.mark.parametrize("args", [[], ["--help"]], ids=["bare", "help"])
def test_top_level_help_imports_nothing_heavy(args: list[str]) -> None:
    modules = _loaded(*args)
    assert _heavy(modules) == []
    assert "neonpro.entrypoints.cli.audit" in modules  # the commands are all listed


@pytest.mark.parametrize("group", _groups(), ids=" ".join)
def test_group_help_imports_nothing_heavy(group: list[str]) -> None:
    assert _heavy(_loaded(*group, "--help")) == []


def test_the_check_sees_a_heavy_import() -> None:
    """The check itself: a command that does its work imports the stacks it needs."""
    assert "sqlalchemy" in _heavy(["sqlalchemy", "sqlalchemy.engine", "typer"])
    assert _heavy(["neonpro.bootstrapper", "typer"]) == []
