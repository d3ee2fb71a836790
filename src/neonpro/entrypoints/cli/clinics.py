"""``neonpro clinics``: the clinics of this database, by name, with their ids."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from neonpro.entrypoints.cli._common import container, out, print_json, typer_app

app = typer_app(help="The clinics of this database: names and ids.", no_args_is_help=True)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
          = False) -> None:
    """Every clinic, by name, with its id (read with the service role: it crosses clinics)."""
    from neonpro.domain.actors import SystemActors
    from neonpro.services import clinics as svc

    with container() as box:
        found = svc.list_clinics(box.service_uow(SystemActors.CLI))
    if as_json:
        print_json([{"id": str(c.id), "name": c.name, "is_active": c.is_active}
                    for c in found])
        return
    if not found:
        out.print("no clinic yet: `neonpro demo seed` creates demo clinics", highlight=False)
        return
    table = Table("name")
    table.add_column("id", no_wrap=True, min_width=36)  # whole, to copy
    table.add_column("active")
    for c in found:
        table.add_row(c.name, str(c.id), "yes" if c.is_active else "no")
    out.print(table)
