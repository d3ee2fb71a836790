"""``neonpro audit``: seal, verify and checkpoint the tamper-evident audit chains."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neonpro.adapters.db.audit import (
    export_checkpoints,
    load_checkpoints,
    seal_pending,
    verify_chains,
)
from neonpro.domain.actors import SystemActors
from neonpro.entrypoints.cli._common import container, fail, out, print_json

app = typer.Typer(help="Seal, verify and checkpoint the audit trail.", no_args_is_help=True)
ACTOR = SystemActors.CLI


@app.command()
def seal() -> None:
    """Seal every pending audit event now (it also happens at the end of every command)."""
    with container() as box:
        count = seal_pending(box.database, ACTOR)
    out.print(f"sealed {count} event(s)")


@app.command()
def verify(
    clinic: Annotated[uuid.UUID | None, typer.Option(help="Only this clinic's chain.")] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(help="A checkpoint file from `audit checkpoint`: detects truncation."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute every chain (or one); exit 1 naming the first broken link of each."""
    cps = None
    if checkpoints is not None:
        try:
            cps = load_checkpoints(json.loads(checkpoints.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            fail(f"cannot read checkpoints: {type(exc).__name__}")
    with container() as box:
        reports = verify_chains(box.database, ACTOR, clinic, cps, box.checkpoint_key)
    if as_json:
        print_json([r.as_dict() for r in reports])
    else:
        table = Table("clinic", "sealed", "head", "unsealed", "status")
        for r in reports:
            status = "ok" if r.ok else f"BROKEN at seq {r.broken_at}: {r.reason}"
            if r.checkpoint:
                status += f" (checkpoint {r.checkpoint})"
            table.add_row(str(r.clinic_id), str(r.sealed), str(r.head_seq), str(r.unsealed),
                          status)
        out.print(table)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@app.command()
def checkpoint(
    output: Annotated[Path, typer.Option("--out", help="Where to write the signed heads.")],
) -> None:
    """Export each chain's head signed with a key kept outside the database."""
    with container() as box:
        data = export_checkpoints(box.database, ACTOR, box.checkpoint_key)
    output.write_text(json.dumps(data, indent=2), encoding="utf-8")
    out.print(f"{len(data['checkpoints'])} checkpoint(s) written to {output}")
