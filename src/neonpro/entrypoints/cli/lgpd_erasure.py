"""``neonpro lgpd erase`` and ``neonpro lgpd retention``: erasure by law and the retention
engine (attached to the ``lgpd`` group in ``app.py``)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.progress import Progress
from rich.table import Table

from neonpro.domain.actors import SystemActors
from neonpro.entrypoints.cli._common import console, container, fail, out, print_json

ACTOR = SystemActors.CLI


def erase(
    patient: Annotated[uuid.UUID, typer.Argument(help="The patient to erase.")],
    clinic: Annotated[uuid.UUID, typer.Option(help="The patient's clinic.")],
    request: Annotated[uuid.UUID | None, typer.Option(help="The data-subject request.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Show the per-category decision the law dictates, ask, then carry it out."""
    from neonpro.services import erasure as erasure_service

    with container() as box:
        plan = erasure_service.plan_erasure(box.uow(clinic, ACTOR), patient)
        table = Table("category", "decision", "legal reference")
        for d in plan:
            table.add_row(d.category.value, d.action.value, d.legal_reference)
        out.print(table)
        if not yes and not typer.confirm("carry out these decisions?", default=False):
            fail("nothing was changed", 1)
        done = erasure_service.erase_patient(box.admin_uow(clinic, ACTOR), patient, request)
    out.print(f"patient {done.patient_id}: {done.outcome} (ledger {done.ledger_id})")


def retention(
    clinic: Annotated[uuid.UUID | None, typer.Option(help="Only this clinic.")] = None,
    apply: Annotated[bool, typer.Option("--apply/--dry-run",
                                        help="Carry out the plan (default: show it).")] = False,
    batch: Annotated[int, typer.Option(min=1, max=5000)] = 1000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List what each clinic's retention policies would do and why; --apply does it."""
    from neonpro.services import retention as retention_service

    with container() as box:
        plan = retention_service.plan_retention(box, ACTOR, clinic)
        if not apply:
            if as_json:
                print_json([{**vars(i), "clinic_id": str(i.clinic_id),
                             "policy_id": str(i.policy_id), "target": str(i.target)}
                            for i in plan])
                return
            table = Table("clinic", "category", "trigger", "action", "target", "why")
            for i in plan:
                table.add_row(str(i.clinic_id), i.category, i.trigger, i.action, str(i.target),
                              i.reason)
            out.print(table)
            out.print(f"{len(plan)} action(s) due; run with --apply to carry them out")
            return
        # seal the run's audit events while it runs (a second database backend), so only
        # the tail is left for the seal at exit
        box.start_sealer(interval=1.0)
        with Progress(console=console) as bar:
            task = bar.add_task("retention", total=len(plan))
            report = retention_service.apply_retention(
                box, ACTOR, plan, batch,
                progress=lambda done, total: bar.update(task, completed=done, total=total))
    if as_json:
        print_json(vars(report))
    else:
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(report.by_outcome.items()))
        out.print(f"applied {report.applied} of {report.planned}"
                  + (f": {outcomes}" if outcomes else ""), highlight=False)
