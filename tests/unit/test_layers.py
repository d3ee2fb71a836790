"""The layers' dependency rules (docs: architecture.md, "Dependencies point inward"),
read from the source with ``ast``: every import, at module level or inside a function or
an ``if TYPE_CHECKING:`` block, counts.

* the domain imports nothing from services, adapters, entry points or the composition root;
* services import no entry point, adapter, driver, settings or composition root (they work
  over the ports);
* adapters import no service and no entry point;
* entry points import nothing from ``neonpro.adapters.db`` but what :data:`ENTRY_DB_ALLOWED`
  lists, each with its reason (they call services; the database is the services' business).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import neonpro

SRC = Path(neonpro.__file__).parent

# module prefix of the importer -> the module prefixes it may not import
RULES: dict[str, tuple[str, ...]] = {
    "neonpro.domain": ("neonpro.services", "neonpro.adapters", "neonpro.entrypoints",
                       "neonpro.bootstrap"),
    # services work over the ports of ``domain/ports*.py``: never the composition root,
    # the settings, an adapter, a driver or a subprocess (those are adapters' business)
    "neonpro.services": ("neonpro.entrypoints", "neonpro.adapters", "neonpro.bootstrap",
                         "neonpro.config", "psycopg", "sqlalchemy", "subprocess"),
    "neonpro.adapters": ("neonpro.services", "neonpro.entrypoints"),
    "neonpro.entrypoints": ("neonpro.adapters.db",),
}

# (importer, imported) pairs the rules above allow anyway, each with its reason
ENTRY_DB_ALLOWED: dict[tuple[str, str], str] = {
    ("neonpro.entrypoints.api.deps", "neonpro.adapters.db.uow"):
        "Caller.uow() and admin_uow() are typed with the unit of work the services take "
        "(SqlUnitOfWork); nothing else of it is used",
    ("neonpro.entrypoints.api.problems", "neonpro.adapters.db.database"):
        "the one place that maps database failures to HTTP: which are transient or timeouts "
        "(503) is the adapter's knowledge",
    ("neonpro.entrypoints.api.problems", "neonpro.adapters.db.deadline"):
        "RequestTimedOut and CommitOutcomeUnknown, infrastructure errors answered 503 here",
    ("neonpro.entrypoints.api.problems", "neonpro.adapters.db.errors"):
        "describe/origin_of: the log line of an unexpected database error names constraint, "
        "SQLSTATE and statement origin, never the driver's text",
    ("neonpro.entrypoints.api.resilience", "neonpro.adapters.db.database"):
        "the request deadline middleware: which database errors are transient",
    ("neonpro.entrypoints.api.resilience", "neonpro.adapters.db.deadline"):
        "the middleware opens the request's deadline, which the database layer enforces",
    ("neonpro.entrypoints.api.idempotency", "neonpro.adapters.db.deadline"):
        "an Idempotency-Key claim lives as long as the request's deadline",
    ("neonpro.entrypoints.api.idempotency", "neonpro.adapters.db.repositories.idempotency"):
        "current_claim: the request's claim, a context variable the unit of work commits with",
    ("neonpro.entrypoints.cli._common", "neonpro.adapters.db.embedded"):
        "the one place that maps CLI errors: EmbeddedError (the local server cannot start)",
    ("neonpro.entrypoints.cli._common", "neonpro.adapters.db.errors"):
        "the one place that maps CLI errors: a database error as one line, no values",
}


def _module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, module: str, *, package: bool) -> set[str]:
    """Every module ``tree`` imports, absolute (``from . import x`` resolved)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")
                parent = parent[: len(parent) - node.level + (1 if package else 0)]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            # ``from neonpro.adapters import db``: the submodule is what is imported
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(root: Path = SRC) -> list[str]:
    """``importer -> imported`` for every import a rule forbids and nothing allows."""
    out = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        imported = _imports(tree, module, package=path.name == "__init__.py")
        for layer, forbidden in RULES.items():
            if not _within(module, layer):
                continue
            for name in sorted(imported):
                if not any(_within(name, f) for f in forbidden):
                    continue
                allowed = any(_within(name, target) and module == who
                              for who, target in ENTRY_DB_ALLOWED)
                if not allowed:
                    out.append(f"{module} -> {name}")
    return sorted(set(out))


def test_layers_import_only_inward() -> None:
    assert violations() == []


def test_every_allowance_is_still_needed() -> None:
    """An allowance nothing uses any more is removed, so the list says what remains."""
    used = set()
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        imported = _imports(ast.parse(path.read_text(encoding="utf-8")), module,
                            package=path.name == "__init__.py")
        used.update((who, target) for who, target in ENTRY_DB_ALLOWED
                    if who == module and any(_within(n, target) for n in imported))
    assert set(ENTRY_DB_ALLOWED) - used == set()


@pytest.mark.parametrize(("where", "line", "broken"), [
    ("domain/x.py", "from neonpro.adapters.db import uow\n",
     "neonpro.domain.x -> neonpro.adapters.db"),
    ("domain/y.py", "def f():\n    import neonpro.bootstrap\n",
     "neonpro.domain.y -> neonpro.bootstrap"),
    ("domain/z.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     "    from neonpro.services.audit import seal\n",
     "neonpro.domain.z -> neonpro.services.audit"),
    ("services/x.py", "from neonpro.entrypoints.cli import app\n",
     "neonpro.services.x -> neonpro.entrypoints.cli"),
    ("services/x.py", "from neonpro.adapters.db.uow import SqlUnitOfWork\n",
     "neonpro.services.x -> neonpro.adapters.db.uow"),
    ("services/x.py", "import psycopg\n", "neonpro.services.x -> psycopg"),
    ("services/x.py", "from neonpro.bootstrap import Container\n",
     "neonpro.services.x -> neonpro.bootstrap"),
    ("services/x.py", "from neonpro.config import Settings\n",
     "neonpro.services.x -> neonpro.config"),
    ("adapters/x.py", "from ..services import audit\n", "neonpro.adapters.x -> neonpro.services"),
    ("entrypoints/api/x.py", "from neonpro.adapters.db.audit import verify_chains\n",
     "neonpro.entrypoints.api.x -> neonpro.adapters.db.audit"),
    ("entrypoints/cli/x.py", "from neonpro.adapters import db\n",
     "neonpro.entrypoints.cli.x -> neonpro.adapters.db"),
    # an allowance is for its module only
    ("entrypoints/api/x.py", "from neonpro.adapters.db.deadline import Deadline\n",
     "neonpro.entrypoints.api.x -> neonpro.adapters.db.deadline"),
])
def test_a_broken_rule_is_named(tmp_path: Path, where: str, line: str, broken: str) -> None:
    """The check itself: a forbidden import in a scratch tree of the same layout is named."""
    root = tmp_path / "neonpro"
    (root / where).parent.mkdir(parents=True)
    (root / where).write_text(line, encoding="utf-8")
    assert broken in violations(root)


def test_allowed_imports_pass(tmp_path: Path) -> None:
    root = tmp_path / "neonpro"
    (root / "entrypoints" / "api").mkdir(parents=True)
    (root / "entrypoints" / "api" / "deps.py").write_text(
        "from neonpro.adapters.db.uow import SqlUnitOfWork\n"
        "from neonpro.adapters.auth import Principal\nfrom neonpro.services import audit\n",
        encoding="utf-8")
    (root / "domain").mkdir()
    (root / "domain" / "x.py").write_text("from neonpro.domain import errors\n",
                                          encoding="utf-8")
    assert violations(root) == []


def private_reads(root: Path = SRC / "entrypoints") -> list[str]:
    """``file:line name`` of every read of another object's private attribute
    (``caller._box``, ``repo._mrn``, a library's ``_describe_range``) in ``root``."""
    out = []
    for path in sorted(root.rglob("*.py")):
        out.extend(f"{path.name}:{node.lineno} {node.attr}"
                   for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                   if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                   and not node.attr.startswith("__")
                   and not (isinstance(node.value, ast.Name)
                            and node.value.id in {"self", "cls"}))
    return out


def test_entry_points_read_no_private_attribute() -> None:
    assert private_reads() == []


def test_a_private_read_is_named(tmp_path: Path) -> None:
    (tmp_path / "r.py").write_text("def f(caller):\n    return caller._box\n", encoding="utf-8")
    assert private_reads(tmp_path) == ["r.py:2 _box"]
