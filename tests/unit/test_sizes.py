"""Size contracts (issue 17, item 5): no module over 500 lines outside the migrations, no
function over 50 lines. Read from the source with ``ast``: a module's size is its line
count, a function's runs from its ``def`` line to its last line (nested ones count too).

``ALLOWED`` is a ratchet: the offenders not yet split, each at its size today. A listed
offender may shrink (then lower or drop its entry) but not grow; anything unlisted fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import neonpro

SRC = Path(neonpro.__file__).parent
EXCLUDED = SRC / "adapters" / "db" / "migrations" / "versions"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 50

# offender ("path" or "path::qualified.function", relative to src/neonpro) -> the most lines
# it may have until it is split. Every entry is debt: remove it when the split lands.
# Empty since issue 17 item 5 was done: every module and function is within its limits.
ALLOWED: dict[str, int] = {}


def _sources() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if EXCLUDED not in p.parents)


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            found.append((name, (node.end_lineno or node.lineno) - node.lineno + 1))
            found += _functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            found += _functions(node, f"{prefix}{node.name}.")
        else:
            found += _functions(node, prefix)
    return found


def measure(paths: list[Path], root: Path = SRC) -> dict[str, tuple[int, int]]:
    """Every module and function over its limit -> (lines, limit)."""
    over: dict[str, tuple[int, int]] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            over[rel] = (lines, MAX_MODULE_LINES)
        for name, size in _functions(ast.parse(text, filename=str(path))):
            if size > MAX_FUNCTION_LINES:
                over[f"{rel}::{name}"] = (size, MAX_FUNCTION_LINES)
    return over


def offenders(over: dict[str, tuple[int, int]]) -> list[str]:
    """The offenders ``ALLOWED`` does not cover, one line each."""
    return [f"{name}: {lines} lines (limit {limit}"
            + (f", allowed {ALLOWED[name]})" if name in ALLOWED else ")")
            for name, (lines, limit) in sorted(over.items())
            if lines > ALLOWED.get(name, limit)]


def test_no_module_or_function_over_its_limit() -> None:
    bad = offenders(measure(_sources()))
    assert not bad, "over the size limits (split them, see docs/architecture.md):\n" + "\n".join(bad)


def test_allowed_entries_are_still_needed() -> None:
    over = measure(_sources())
    stale = [f"{name}: allowed {lines}, now {over[name][0] if name in over else 'within'}"
             for name, lines in sorted(ALLOWED.items())
             if name not in over or over[name][0] < lines]
    assert not stale, "lower or drop these ALLOWED entries (the ratchet only tightens):\n" + "\n".join(stale)


def test_the_scan_catches_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    module = tmp_path / "long.py"
    module.write_text(f"class C:\n    def f(self) -> None:\n    {body.replace(chr(10), chr(10) + '    ')}\n"
                      + "\n" * MAX_MODULE_LINES, encoding="utf-8")
    over = measure([module], tmp_path)
    assert over == {"long.py": (MAX_MODULE_LINES + 3 - 1 + MAX_FUNCTION_LINES - 1 + 1,
                                MAX_MODULE_LINES),
                    "long.py::C.f": (MAX_FUNCTION_LINES + 1, MAX_FUNCTION_LINES)}
