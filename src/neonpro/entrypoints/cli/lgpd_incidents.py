"""``neonpro lgpd incidents`` and ``neonpro lgpd disclosures``: the register and the log.

Plain functions, attached to the ``lgpd`` group with ``app.command("incidents")(incidents)``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from neonpro.domain.actors import SystemActors
from neonpro.domain.paging import MAX_PAGE_SIZE, PageRequest
from neonpro.entrypoints.cli._common import container, out, print_json

ACTOR = SystemActors.CLI
ClinicOpt = Annotated[uuid.UUID, typer.Option(help="The clinic whose records to read.")]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment else "-"


def incidents(
    clinic: ClinicOpt,
    overdue: Annotated[bool, typer.Option(
        "--overdue", help="Only notifiable incidents past due and not yet notified.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The security-incident register, newest first; exit 1 when an incident is overdue."""
    from neonpro.services import incidents as incident_svc

    now = datetime.now(UTC)
    with container() as box:
        page = incident_svc.list_incidents(box.uow(clinic, ACTOR), overdue=overdue, now=now,
                                           page=PageRequest(limit=MAX_PAGE_SIZE))
    late = [i for i in page.items if i.is_overdue(now)]
    if as_json:
        print_json([{**i.model_dump(mode="json", exclude={"description"}),
                     "overdue": i.is_overdue(now)} for i in page.items])
    else:
        table = Table("detected", "status", "risk", "patients", "categories", "due", "anpd",
                      "subjects", "overdue")
        for i in page.items:
            table.add_row(_when(i.detected_at), i.status, i.risk_level,
                          str(i.affected_patient_count), ",".join(i.affected_data_categories),
                          _when(i.notification_due_at), _when(i.notified_anpd_at),
                          _when(i.notified_subjects_at), "YES" if i.is_overdue(now) else "")
        out.print(table)
        if page.total is not None and page.total > len(page.items):
            out.print(f"showing {len(page.items)} of {page.total}")
    if late:
        raise typer.Exit(1)


def disclosures(
    clinic: ClinicOpt,
    patient: Annotated[uuid.UUID | None, typer.Option(
        help="Only this patient's disclosures (LGPD art. 18 VII).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The disclosure log of the last 6 years (the accounting window), newest first."""
    from neonpro.services import disclosures as disclosure_svc

    with container() as box:
        page = disclosure_svc.list_disclosures(box.uow(clinic, ACTOR), patient,
                                               page=PageRequest(limit=MAX_PAGE_SIZE))
    if as_json:
        print_json([d.model_dump(mode="json") for d in page.items])
        return
    table = Table("when", "patient", "recipient", "address", "data", "purpose", "basis")
    for d in page.items:
        table.add_row(_when(d.disclosed_at), str(d.patient_id), d.recipient_name,
                      d.recipient_address or "-", ",".join(d.data_categories) or "-",
                      d.purpose, d.legal_basis)
    out.print(table)
    if page.total is not None and page.total > len(page.items):
        out.print(f"showing {len(page.items)} of {page.total}")
