"""``neonpro consent``: the expiry job, the compliance check, a patient's history and the
state of each of its purposes (the latest decision wins)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer
from rich.table import Table

from neonpro.domain.actors import SystemActors
from neonpro.domain.vocabulary import ConsentPurpose
from neonpro.entrypoints.cli._common import container, out, print_json, typer_app

app = typer_app(help="The consent ledger: expiry, compliance, history, state.",
                no_args_is_help=True)
ACTOR = SystemActors.CLI
JsonFlag = Annotated[bool, typer.Option("--json")]


@app.command()
def expire(as_json: JsonFlag = False) -> None:
    """Record the expiry of every consent past its expires_at (all clinics; run daily)."""
    from neonpro.services import consents

    with container() as box:
        count = consents.expire_consents(box.service_uow(SystemActors.SCHEDULER))
    if as_json:
        print_json({"expired": count})
    else:
        out.print(f"{count} consent(s) expired")


@app.command()
def check(clinic: Annotated[uuid.UUID, typer.Option()], as_json: JsonFlag = False) -> None:
    """The compliance check of a clinic's consents; exit 1 when a high-risk finding exists."""
    from neonpro.services import consents

    with container() as box:
        findings = consents.check_compliance(box.uow(clinic, ACTOR))
    if as_json:
        print_json([{**vars(f), "risk": f.risk.value} for f in findings])
    else:
        table = Table("risk", "finding", "purpose", "patient", "consent")
        for f in findings:
            table.add_row(f.risk.value, f.kind, f.purpose, str(f.patient_id), str(f.consent_id))
        out.print(table)
    if any(f.risk.value in ("high", "critical") for f in findings):
        raise typer.Exit(1)


@app.command()
def history(clinic: Annotated[uuid.UUID, typer.Option()],
            patient: Annotated[uuid.UUID, typer.Option()],
            purpose: Annotated[ConsentPurpose | None, typer.Option()] = None,
            as_json: JsonFlag = False) -> None:
    """Every ledger row of a patient, oldest first (the state at any past moment)."""
    from neonpro.services import consents

    with container() as box:
        rows = consents.consent_history(box.uow(clinic, ACTOR), patient, purpose)
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("when", "purpose", "status", "basis", "terms", "expires")
    for r in rows:
        table.add_row(r.created_at.isoformat(timespec="seconds"), r.purpose, r.status,
                      r.legal_basis, r.terms_version,
                      r.expires_at.isoformat(timespec="seconds") if r.expires_at else "-")
    out.print(table)


@app.command()
def state(clinic: Annotated[uuid.UUID, typer.Option()],
          patient: Annotated[uuid.UUID, typer.Option()],
          as_json: JsonFlag = False) -> None:
    """The state of each purpose of a patient: the latest decision (grant or revocation,
    in ledger order) wins; the consent gate, the summary and confirmation read the same."""
    from neonpro.services import consents

    with container() as box:
        rows = consents.consent_states(box.uow(clinic, ACTOR), patient)
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("purpose", "state", "decision", "at", "terms", "expires")
    for r in rows:
        table.add_row(r.purpose, r.state.value, r.decision,
                      r.decided_at.isoformat(timespec="seconds") if r.decided_at else "-",
                      r.terms_version,
                      r.expires_at.isoformat(timespec="seconds") if r.expires_at else "-")
    out.print(table)
