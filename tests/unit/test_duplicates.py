"""The code does not repeat itself more than it did (issue 17): ``duplicates`` (the
project's tool library, on the development machine and in CI) lists the pairs of places in
``src/`` sharing six or more lines; the real copies among them (not marked boilerplate, and
not two frozen migrations, which are snapshots by design) are held at or under
:data:`BASELINE`. A change that removes copies lowers the baseline with it.

CI sets ``NEONPRO_REQUIRE_DUPLICATES=1``: there a missing tool fails the run; elsewhere the
test is skipped, saying why.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import neonpro

SRC = Path(neonpro.__file__).parent.parent
BASELINE = 43  # counted 2026-12-03 on main after issue 17 (import lists and catalog twins among them)
_MIGRATION = "adapters/db/migrations/versions/"
_ROW = re.compile(r"^D\d+ (\S+):\d+-\d+ ~ (\S+):\d+-\d+(.*)$")


def real_copies(report: str) -> list[str]:
    """The rows of a ``duplicates`` report that count: not boilerplate, not two migrations."""
    rows = []
    for line in report.splitlines():
        match = _ROW.match(line)
        if match is None or "boilerplate" in match.group(3):
            continue
        if _MIGRATION in match.group(1) and _MIGRATION in match.group(2):
            continue
        rows.append(line)
    return rows


def _report() -> str:
    tool = shutil.which("duplicates")
    if tool is None:
        if os.environ.get("NEONPRO_REQUIRE_DUPLICATES") == "1":
            pytest.fail("the duplicates tool is required here (NEONPRO_REQUIRE_DUPLICATES=1)")
        pytest.skip("the duplicates tool (the project's tool library) is not on this machine")
    done = subprocess.run([tool, "--repo", str(SRC), "--most", "200", "--seconds", "300"],
                          capture_output=True, text=True, check=True, timeout=600)
    assert "incomplete" not in done.stdout, done.stdout[-2000:]
    assert not any(line.startswith("(+") for line in done.stdout.splitlines()), (
        "more pairs than one report lists: raise --most")
    return done.stdout


def test_src_repeats_itself_no_more_than_before() -> None:
    copies = real_copies(_report())
    assert len(copies) <= BASELINE, "\n".join(copies)


def test_the_count_reads_the_report() -> None:
    """The check itself: boilerplate and migration pairs are not counted, others are."""
    report = "\n".join([
        "3 pairs of places (9 files read), ...",
        "D1 neonpro/a.py:1-9 ~ neonpro/b.py:3-11 shape",
        "D2 neonpro/a.py:1-9 ~ neonpro/c.py:3-11 shape boilerplate",
        f"D3 neonpro/{_MIGRATION}x.py:1-9 ~ neonpro/{_MIGRATION}y.py:3-11",
        f"D4 neonpro/{_MIGRATION}x.py:1-9 ~ neonpro/adapters/db/z.py:3-11",
    ])
    assert [r.split()[0] for r in real_copies(report)] == ["D1", "D4"]
