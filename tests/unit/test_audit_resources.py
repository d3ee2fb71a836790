"""Audit resource types: one enum, every spelling the application writes comes from it."""

from __future__ import annotations

import ast
from pathlib import Path

import neonpro
from neonpro.adapters.db.audit_sql import AUDITED_TABLES
from neonpro.domain.vocabulary import AuditResource

SRC = Path(neonpro.__file__).parent
# modules allowed to write a literal that equals an enum value (none today)
LITERALS_ALLOWED: set[str] = set()


def test_the_row_change_trigger_names_resources_of_the_enum() -> None:
    """Every table the trigger audits writes its name as resource_type: a member."""
    assert set(AUDITED_TABLES) <= {r.value for r in AuditResource}


def test_one_spelling_per_resource_the_application_writes() -> None:
    values = {r.value for r in AuditResource}
    assert "appointments" in values  # the table (trigger), not a second name for a read
    assert "security_incidents" in values
    singular = {"patient", "appointment", "security_incident"}
    assert singular <= values


def _record_calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Attribute) and n.func.attr in {"record", "record_many"}
            and isinstance(n.func.value, ast.Attribute) and n.func.value.attr == "audit"]


def test_every_audit_record_names_an_audit_resource() -> None:
    """No ``audit.record(action, "free string")``: the resource is an AuditResource member
    (or a name bound to one), and a literal is at least one of its values."""
    values = {r.value for r in AuditResource}
    loose = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC.parent.parent))
        for call in _record_calls(ast.parse(path.read_text(encoding="utf-8"))):
            resource = call.args[1] if len(call.args) > 1 else None
            if (isinstance(resource, ast.Constant) and isinstance(resource.value, str)
                    and (rel not in LITERALS_ALLOWED or resource.value not in values)):
                loose.append(f"{rel}:{call.lineno} {resource.value!r}")
    assert loose == []
