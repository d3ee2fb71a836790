"""``neonpro audit``: seal, verify and checkpoint the tamper-evident audit chains."""

from __future__ import annotations

import ipaddress
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from neonpro.domain.actors import SystemActors
from neonpro.entrypoints.cli._common import container, fail, out, print_json, typer_app

app = typer_app(help="Seal, verify and checkpoint the audit trail.", no_args_is_help=True)
ACTOR = SystemActors.CLI
CHAIN_LABELS = {"audit_events": "audit", "erasure_ledger": "erasure", "consent_records": "consent",
                "disclosures": "disclosure"}


@app.command()
def seal() -> None:
    """Seal every pending audit event now (it also happens at the end of every command)."""
    from neonpro.services import audit as audit_service

    with container() as box:
        count = audit_service.seal(box.audit_chain, ACTOR)
    out.print(f"sealed {count} event(s)")


@app.command()
def verify(
    clinic: Annotated[uuid.UUID | None, typer.Option(help="Only this clinic's chains.")] = None,
    checkpoints: Annotated[
        Path | None,
        typer.Option(help="A checkpoint file, a directory of them, or syslog lines: every "
                          "chain must still hold each signed hash."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute every chain (or one clinic's): audit trail and erasure ledger; exit 1
    naming the first broken link of each."""
    from neonpro.bootstrap import Container
    from neonpro.services import audit as audit_service

    cps = None
    if checkpoints is not None:
        try:
            cps = audit_service.read_checkpoints(Container().audit_chain, checkpoints)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            fail(f"cannot read checkpoints: {type(exc).__name__}")
    with container() as box:
        reports = audit_service.verify(box.audit_chain, ACTOR, clinic, cps)
    if as_json:
        print_json([r.as_dict() for r in reports])
    else:
        table = Table("clinic", "chain", "sealed", "head", "unsealed", "status")
        for r in reports:
            status = "ok" if r.ok else f"BROKEN at seq {r.broken_at}"
            if r.checkpoint:
                status += f" (checkpoint {r.checkpoint})"
            table.add_row(str(r.clinic_id), CHAIN_LABELS.get(r.chain, r.chain), str(r.sealed),
                          str(r.head_seq), str(r.unsealed), status)
        out.print(table)
        for r in reports:  # the reasons in full, one line each (never wrapped into the table)
            if not r.ok:
                out.print(f"{r.clinic_id} {r.chain}: BROKEN at seq {r.broken_at}: {r.reason}",
                          soft_wrap=True, highlight=False, markup=False)
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@app.command()
def checkpoint(
    output: Annotated[Path | None, typer.Option(
        "--out", help="Write to this file instead of a new file in the checkpoint directory.",
    )] = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="The checkpoint directory (default NEONPRO_AUDIT_CHECKPOINT_DIR).")] = None,
) -> None:
    """Sign every chain's head with the audit key and write it outside the database (also
    to the HTTP endpoint and syslog if set, and into the system chain). For cron."""
    from neonpro.services import audit as audit_service

    with container() as box:
        result = audit_service.checkpoint(box.audit_chain, directory, output)
    out.print(f"{result.heads} chain head(s) signed and written to {result.path}")


Clinic = Annotated[uuid.UUID, typer.Option(help="The clinic whose trail to read.")]
Since = Annotated[datetime | None, typer.Option(help="From (inclusive); default 30 days ago.")]
Until = Annotated[datetime | None, typer.Option(help="Until (exclusive); default now.")]


def _utc(moment: datetime) -> datetime:
    """Command-line times without an offset are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ip(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        fail("--ip is not an IP address")


def _window(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    end = _utc(until) if until else datetime.now(UTC)
    start = _utc(since) if since else end - timedelta(days=30)
    if start >= end:
        fail("--since must be before --until")
    return start, end


@app.command()
def search(
    clinic: Clinic,
    patient: Annotated[uuid.UUID | None, typer.Option()] = None,
    actor: Annotated[uuid.UUID | None, typer.Option()] = None,
    ip: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option()] = None,
    severity: Annotated[list[str] | None, typer.Option(help="low, medium, high, critical")] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    cursor: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search a clinic's audit events, newest first (keyset pages with --cursor)."""
    from neonpro.domain.audit_reports import AuditFilters
    from neonpro.services import audit as audit_service

    start, end = _window(since, until)
    filters = AuditFilters(patient_id=patient, actor_id=actor, ip_address=_ip(ip), action=action,
                           risk_levels=tuple(severity or ()), since=start, until=end)
    with container() as box:
        page = audit_service.search_audit(box.uow(clinic, ACTOR), filters, limit, cursor)
    if as_json:
        print_json({"items": [vars(e) for e in page.items], "next_cursor": page.next_cursor})
        return
    table = Table("when", "seq", "actor", "role", "action", "resource", "risk", "status")
    for e in page.items:
        table.add_row(e.occurred_at.isoformat(timespec="seconds"), str(e.seq or "-"),
                      str(e.actor_id or "-"), e.actor_role or "-", e.action,
                      f"{e.resource_type or '-'}:{e.resource_id or '-'}", e.risk_level, e.status)
    out.print(table)
    if page.next_cursor:
        out.print(f"next page: --cursor {page.next_cursor}")


@app.command()
def investigate(
    clinic: Clinic,
    actor: Annotated[uuid.UUID | None, typer.Option()] = None,
    ip: Annotated[str | None, typer.Option()] = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Which patients and data categories an actor (or an address) touched in a window."""
    from neonpro.services import audit as audit_service

    if (actor is None) == (ip is None):
        fail("give exactly one of --actor or --ip")
    start, end = _window(since, until)
    with container() as box:
        result = audit_service.investigate_access(box.uow(clinic, ACTOR), start, end,
                                                  actor_id=actor, ip_address=_ip(ip))
    print_json({"events": result.events, "patients": [str(p) for p in result.patients],
                "unresolved_patient_refs": result.unresolved_patient_refs,
                "categories": result.categories, "actions": result.actions})


@app.command()
def report(
    clinic: Clinic,
    since: Since = None,
    until: Until = None,
    html: Annotated[Path | None, typer.Option(help="Also write a readable HTML page.")] = None,
) -> None:
    """The clinic's compliance report for a period as JSON (and HTML with --html)."""
    from neonpro.queries.compliance import report_html
    from neonpro.services import audit as audit_service

    start, end = _window(since, until)
    with container() as box:
        data = audit_service.clinic_report(box.uow(clinic, ACTOR), start, end,
                                            box.audit_chain)
    if html is not None:
        html.write_text(report_html(data), encoding="utf-8")
    print_json(data)


@app.command()
def prune(
    archive_dir: Annotated[Path, typer.Option(help="Where the pruned segments are archived.")],
    clinic: Annotated[uuid.UUID | None, typer.Option(help="Only this clinic's chain.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
) -> None:
    """Archive and delete each chain's expired prefix, leaving a signed cut (retention)."""
    from neonpro.services import audit as audit_service

    with container() as box:
        results = audit_service.prune(box.audit_chain, ACTOR, archive_dir, clinic,
                                      dry_run=dry_run)
    if not results:
        out.print("nothing past its retention period")
    for r in results:
        if dry_run:
            out.print(f"{r.clinic_id}: would prune seq 1..{r.upto_seq}")
        else:
            out.print(f"{r.clinic_id}: pruned {r.pruned} event(s) up to seq {r.upto_seq}; "
                      f"archive {r.archive} sha256 {r.archive_sha256}")
