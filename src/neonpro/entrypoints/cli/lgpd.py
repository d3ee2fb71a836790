"""``neonpro lgpd``: data-subject requests, the confirmation, the access/portability export."""

from __future__ import annotations

import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neonpro.domain.actors import SystemActors
from neonpro.domain.vocabulary import ExportFormat
from neonpro.entrypoints.cli._common import console, container, out, print_json, typer_app

app = typer_app(help="LGPD: data-subject requests, confirmation, export.",
                  no_args_is_help=True)
ACTOR = SystemActors.CLI
JsonFlag = Annotated[bool, typer.Option("--json")]
ClinicOption = Annotated[uuid.UUID, typer.Option(help="the clinic's id")]


@app.command()
def requests(
    clinic: Annotated[uuid.UUID | None, typer.Option(
        help="one clinic (default: every clinic, with the service role)")] = None,
    overdue: Annotated[bool, typer.Option(
        "--overdue", help="only open or in-progress requests past their due date")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Data-subject requests by due date; exit 1 when --overdue finds any."""
    from neonpro.services import lgpd_requests

    now = datetime.now(UTC)
    with container() as box:
        uow = box.uow(clinic, ACTOR) if clinic is not None else box.service_uow(ACTOR)
        rows = lgpd_requests.list_requests(uow, overdue=overdue, now=now)
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
    else:
        table = Table("due", "status", "kind", "received", "request", "patient",
                      *(() if clinic else ("clinic",)))
        for r in rows:
            late = r.status in ("open", "in_progress") and r.due_at < now
            due = r.due_at.isoformat(timespec="minutes")
            table.add_row(f"[red]{due}[/]" if late else due, r.status, r.kind,
                          r.received_at.isoformat(timespec="minutes"), str(r.id),
                          str(r.patient_id), *(() if clinic else (str(r.clinic_id),)))
        out.print(table)
    if overdue and rows:
        raise typer.Exit(1)


@app.command()
def export(
    patient_id: Annotated[uuid.UUID, typer.Argument(help="the patient's id")],
    clinic: ClinicOption,
    export_format: Annotated[ExportFormat, typer.Option("--format")] = ExportFormat.JSON,
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="write here (mode 0600) instead of standard output")] = None,
    request: Annotated[uuid.UUID | None, typer.Option(
        help="the access/portability request this export answers")] = None,
) -> None:
    """Everything held about a patient, as JSON or a FHIR R4 Bundle (audited as EXPORT)."""
    from neonpro.services import lgpd_requests

    with container() as box:
        result = lgpd_requests.export_patient(box.uow(clinic, ACTOR), patient_id,
                                              export_format, request_id=request)
    if out_file is None:
        sys.stdout.buffer.write(result.content)
        sys.stdout.buffer.flush()
    else:
        fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(result.content)
    where = f" -> {out_file}" if out_file else ""
    console.print(f"sha256 {result.sha256} ({len(result.content)} bytes){where}",
                  highlight=False)


@app.command()
def confirm(
    patient_id: Annotated[uuid.UUID, typer.Argument(help="the patient's id")],
    clinic: ClinicOption,
    as_json: JsonFlag = False,
) -> None:
    """Whether the clinic processes the patient's data, since when, what, on which bases."""
    from neonpro.services import lgpd_requests

    with container() as box:
        answer = lgpd_requests.confirm_processing(box.uow(clinic, ACTOR), patient_id)
    if as_json:
        print_json(answer.model_dump(mode="json"))
        return
    since = answer.since.isoformat(timespec="seconds") if answer.since else "-"
    out.print(f"processes data: {'yes' if answer.processes_data else 'no'} (since {since})",
              highlight=False)
    out.print(f"categories: {', '.join(answer.categories) or '-'}", highlight=False)
    table = Table("legal basis", "purpose", "source", "reference", "until")
    for b in answer.legal_bases:
        table.add_row(b.legal_basis.value, b.purpose, b.source, b.reference,
                      b.until.isoformat(timespec="seconds") if b.until else "-")
    out.print(table)
    for w in answer.withdrawn:
        out.print(f"no longer processed: {w.purpose} ({w.status})", highlight=False)
