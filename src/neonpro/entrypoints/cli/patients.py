"""``neonpro patients``: bulk work on a clinic's patients (``import`` from CSV)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from neonpro.domain.actors import SystemActors
from neonpro.entrypoints.cli._common import console, container, fail, out, print_json, typer_app

if TYPE_CHECKING:
    from neonpro.services.patient_import import ImportResult, ProgressFn

app = typer_app(help="Bulk work on a clinic's patients.", no_args_is_help=True)

_PHASES = {"validate": "validating", "load": "copying", "insert": "inserting"}


@contextmanager
def _progress_bar() -> Iterator[ProgressFn]:
    """A Rich progress bar on stderr, one line per phase (rows done of rows)."""
    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(_PHASES.get(phase, phase), total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield report


def _summary(result: ImportResult) -> None:
    out.print(f"read {result.read}, valid {result.valid}, rejected {result.rejected}, "
              f"imported {result.imported} ({result.seconds:.1f} s)", highlight=False)
    if result.rejected:
        out.print(f"rejected rows (line, field, reason): {result.rejects_path}",
                  highlight=False)
    if result.rejected and not result.imported:
        if result.allow_partial:
            out.print("nothing was loaded: no row is valid", highlight=False)
        else:
            out.print("nothing was loaded: fix the rejected rows and import the file again, "
                      "or use --allow-partial to load only the valid rows", highlight=False)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(
        help="CSV file (UTF-8, comma-separated, a header row of patient field names).",
        show_default=False)],
    clinic: Annotated[uuid.UUID, typer.Option(
        "--clinic", help="The clinic the patients belong to.", show_default=False)],
    rejects: Annotated[Path | None, typer.Option(
        "--rejects", help="Where to write rejected rows (line,field,reason). "
        "Default: FILE.rejects.csv next to FILE.", show_default=False)] = None,
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial", help="Load the valid rows even if some are rejected "
        "(still in one transaction).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Validate every row of FILE, then load all valid rows in one transaction.

    If any row is rejected nothing is loaded (exit 1) unless --allow-partial is given.
    The rejects file names the line, field and reason of each problem, never a value.
    """
    from neonpro.services import database
    from neonpro.services.patient_import import default_rejects_path, import_patients

    if not file.exists():
        fail(f"{file} does not exist")
    if not file.is_file():
        fail(f"{file} is not a regular file")
    rejects_path = rejects or default_rejects_path(file)
    with container() as box:
        if not database.at_head(box.database_ops):
            fail("the database schema is not at head: run `neonpro db upgrade` first")
        with _progress_bar() as progress:
            result = import_patients(
                box.uow(clinic, SystemActors.CLI), file, rejects_path=rejects_path,
                allow_partial=allow_partial, progress=progress,
            )
    if as_json:
        print_json(result.to_json())
    else:
        _summary(result)
    if not result.ok:
        raise typer.Exit(1)
