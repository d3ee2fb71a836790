"""``neonpro demo``: synthetic demonstration data, created through the services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from neonpro.devtools.demo import MAX_MONTHS, MAX_PATIENTS, DemoResult, ProgressFn, seed_demo
from neonpro.entrypoints.cli._common import console, container, fail, out, print_json, typer_app
from neonpro.services import database

app = typer_app(help="Generate demonstration data (synthetic, never real people).",
                  no_args_is_help=True)


@contextmanager
def _progress_bar() -> Iterator[ProgressFn]:
    """A Rich progress bar on stderr, one line per phase."""
    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        yield report


def _summary(result: DemoResult) -> None:
    table = Table("created", "count", title=f"demo data, seed {result.seed}")
    for label, count in (
        ("clinics", len(result.clinics)), ("staff users", len(result.users)),
        ("professionals", len(result.professionals)),
        ("service types", len(result.service_types)), ("patients", len(result.patients)),
        ("consents", result.consents), ("appointments", result.appointments),
    ):
        table.add_row(label, str(count))
    for status, count in result.statuses.items():
        if count:
            table.add_row(f"  {status}", str(count))
    out.print(table)
    out.print(f"calendar {result.first_day} .. {result.last_day} (today {result.today}); "
              f"{result.seconds:.1f} s", highlight=False)


@app.command("seed")
def seed_command(
    patients: Annotated[int, typer.Option(
        "--patients", min=1, max=MAX_PATIENTS, help="How many patients.")] = 200,
    seed: Annotated[int, typer.Option(
        "--seed", min=0, help="Random seed: the same seed gives the same data.")] = 42,
    months: Annotated[int, typer.Option(
        "--months", min=1, max=MAX_MONTHS, help="Months of appointment history.")] = 12,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create clinics, staff, patients, consents and appointments (dates end around today).

    Running it again with another --seed adds another, independent set of clinics.
    """
    with container() as box:
        if not database.at_head(box.database_ops):
            fail("the database schema is not at head: run `neonpro db upgrade` first")
        with _progress_bar() as progress:
            result = seed_demo(box, patients=patients, seed=seed, months=months,
                               progress=progress)
    if as_json:
        print_json(result.to_json())
    else:
        _summary(result)
