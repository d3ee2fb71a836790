"""``neonpro demo``: synthetic demonstration data, created through the services."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from neonpro.devtools.demo_sizes import MAX_MONTHS, MAX_PATIENTS
from neonpro.domain.vocabulary import ClinicRole
from neonpro.entrypoints.cli._common import console, container, fail, out, print_json, typer_app
from neonpro.entrypoints.cli.token import development_token

if TYPE_CHECKING:
    from neonpro.bootstrap import Container
    from neonpro.devtools.demo import DemoResult, ProgressFn
    from neonpro.domain.ports_auth import IssuedToken
    from neonpro.domain.schemas.clinic import ClinicRead

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
    from neonpro.devtools.demo import seed_demo
    from neonpro.services import database

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


def demo_access(box: Container) -> tuple[ClinicRead, IssuedToken] | None:
    """The first demo clinic by name (the one `neonpro serve --demo` shows) and a fresh
    development admin token for it; None when the database holds no demo clinic."""
    from neonpro.devtools.demo import is_demo_clinic
    from neonpro.domain.actors import SystemActors
    from neonpro.services import clinics

    listed = clinics.list_clinics(box.service_uow(SystemActors.CLI))
    first = next((c for c in listed if is_demo_clinic(c.name, c.cnpj)), None)
    if first is None:
        return None
    return first, development_token(box, first.id, ClinicRole.ADMIN)


def print_demo_access(clinic: ClinicRead, issued: IssuedToken) -> None:
    out.print(f"demo clinic [bold]{escape(clinic.name)}[/] {clinic.id}", highlight=False)
    out.print(f"admin token (development only, valid until "
              f"{issued.expires_at:%Y-%m-%d %H:%M} UTC):", highlight=False)
    out.print(issued.token, highlight=False, markup=False, soft_wrap=True)


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
         = False) -> None:
    """The demo clinic (name and id) and a fresh admin token for it (development only)."""
    with container() as box:
        access = demo_access(box)
    if access is None:
        fail("this database has no demo clinic: run `neonpro demo seed` (or `./dev run`) "
             "first")
    clinic, issued = access
    if as_json:
        print_json({"clinic_id": str(clinic.id), "name": clinic.name,
                    "role": issued.role.value, "token": issued.token,
                    "expires_at": issued.expires_at.isoformat()})
    else:
        print_demo_access(clinic, issued)
