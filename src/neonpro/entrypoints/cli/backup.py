"""``neonpro backup``: create, list, verify, restore, prune and drill logical backups."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from neonpro.entrypoints.cli._common import (
    container,
    durations,
    fail,
    os_error,
    out,
    print_json,
    typer_app,
)

if TYPE_CHECKING:
    from neonpro.bootstrap import Container
    from neonpro.services import backup as svc

app = typer_app(help="Logical backups: create, verify, restore, prune, drill.",
                  no_args_is_help=True)

DirOption = Annotated[Path | None, typer.Option(
    "--dir", help="Backup directory (default NEONPRO_BACKUP_DIR).")]
JsonOption = Annotated[bool, typer.Option("--json")]
AcceptRiskOption = Annotated[bool, typer.Option(
    "--accept-erasure-risk",
    help="Open the restored database even though erasures decided after the newest backup "
         "could not be proven re-applied (the live ledger did not answer); recorded in the "
         "audit trail as a critical event.")]
HELD = 4  # exit code: restored, but closed to the application until erasures are proven


@contextmanager
def _box(directory: Path | None) -> Iterator[tuple[Container, Path]]:
    import psycopg

    from neonpro.redaction import redact_text
    from neonpro.services import backup as svc

    with container() as box:
        try:
            yield box, directory or box.settings.backup_dir
        except svc.CorruptBackup as exc:
            fail(f"corrupt backup: {exc}", 3)
        except (svc.BackupError, svc.ToolError, ValueError) as exc:
            fail(str(exc))
        except psycopg.Error as exc:
            fail(f"database error: {redact_text(str(exc).splitlines()[0][:300])}")
        except OSError as exc:  # a full disk, a missing directory, no permission
            fail(os_error(exc))


def _find(box: Container, directory: Path, backup_id: str) -> svc.Backup:
    from neonpro.services import backup as svc

    try:
        return svc.find(box.backup_store(directory), backup_id)
    except svc.BackupError as exc:
        fail(str(exc))


@app.command()
def create(directory: DirOption = None, as_json: JsonOption = False) -> None:
    """Dump the database (custom format, compressed, optionally encrypted) with a manifest."""
    from neonpro.services import backup as svc

    with _box(directory) as (box, where):
        backup = svc.create_backup(box, directory=where)
    if as_json:
        print_json(backup.summary() | {"path": str(backup.path)})
        return
    s = backup.summary()
    out.print(f"backup {backup.id}: {s['rows']} rows in {len(backup.manifest['tables'])} "
              f"tables, {s['bytes'] / 1e6:.1f} MB{' (encrypted)' if s['encrypted'] else ''}, "
              f"migration {s['migration_head']}")
    out.print(f"  {backup.path}")


@app.command("list")
def list_(directory: DirOption = None, as_json: JsonOption = False) -> None:
    """The complete backups, oldest first, and whether each was verified."""
    from neonpro.services import backup as svc

    with _box(directory) as (box, where):
        backups = svc.catalog(box.backup_store(where))
    if as_json:
        print_json([b.summary() for b in backups])
        return
    table = Table("MB", "rows", "migration", "encrypted", "verified")
    table.add_column("id (UTC time of the backup)", no_wrap=True)
    for b in backups:
        s = b.summary()
        table.add_row(f"{s['bytes'] / 1e6:.1f}", str(s["rows"]),
                      str(s["migration_head"]), "yes" if s["encrypted"] else "no",
                      "yes" if s["verified"] else "no", b.id)
    out.print(table)


@app.command()
def verify(backup_id: str, directory: DirOption = None, as_json: JsonOption = False,
           jobs: Annotated[int, typer.Option(min=1, max=16)] = 2) -> None:
    """Restore into a scratch database, check row counts, checksums and audit chains."""
    from neonpro.services import backup as svc

    with _box(directory) as (box, where):
        report = svc.verify_backup(box, _find(box, where, backup_id), jobs=jobs)
    if as_json:
        print_json(report.as_dict())
    else:
        for problem in report.problems:
            out.print(f"[red]FAIL[/] {problem}")
        verdict = "[green]PASS[/]" if report.ok else "[red]FAIL[/]"
        out.print(f"{verdict} backup {backup_id}: {report.audit_events_verified} audit events "
                  f"verified ({durations(report.seconds)})")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def restore(
    backup_id: str,
    target: Annotated[str, typer.Option("--target", help="Database URL to restore into.")],
    force: Annotated[bool, typer.Option(help="Replace a non-empty target database.")] = False,
    accept_erasure_risk: AcceptRiskOption = False,
    directory: DirOption = None,
    as_json: JsonOption = False,
    jobs: Annotated[int, typer.Option(min=1, max=16)] = 2,
) -> None:
    """Restore into --target: roles, data, migrations, re-applied erasures, health check.

    Exit 4 when the erasures decided after the newest backup could not be proven re-applied
    (the live ledger did not answer): the database is then closed to the application role
    until `neonpro backup reapply` finishes the job."""
    from neonpro.services import backup as svc

    with _box(directory) as (box, where):
        try:
            report = svc.restore_backup(box, _find(box, where, backup_id), target, force=force,
                                        jobs=jobs, accept_erasure_risk=accept_erasure_risk)
        except svc.RestoreRefused as exc:
            fail(str(exc), 2)
    if as_json:
        print_json(report.as_dict())
    else:
        for problem in report.problems:
            out.print(f"[red]FAIL[/] {problem}")
        for warning in report.warnings:
            out.print(f"[yellow]WARNING[/] {warning}")
        verdict = "[green]restored[/]" if report.ok else "[red]restored with problems[/]"
        out.print(f"{verdict} {backup_id} into {report.target}: "
                  f"{report.reapplied_erasures} erasure(s) re-applied, health "
                  f"{'ok' if report.health.get('ok') else 'FAILED'} ({durations(report.seconds)})")
    if report.held:
        fail(f"restored, but closed to the application: erasures decided after the newest "
             f"backup could not be proven re-applied; run {report.finish}", HELD)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def reapply(
    backup_id: str,
    target: Annotated[str, typer.Option("--target", help="The restored database's URL.")],
    accept_erasure_risk: AcceptRiskOption = False,
    directory: DirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Finish a restore left closed (exit 4): re-apply the erasures of the live ledger and
    of the later backups, then open the database to the application role again."""
    from neonpro.services import backup as svc

    with _box(directory) as (box, where):
        try:
            done = svc.finish_restore(box, _find(box, where, backup_id), target,
                                      accept_erasure_risk=accept_erasure_risk)
        except svc.BackupError as exc:
            fail(str(exc), HELD)
    if as_json:
        print_json(done.as_dict())
    else:
        how = "proven" if done.erasures_proven else "NOT proven (risk accepted, audited)"
        out.print(f"{done.target}: {done.reapplied_erasures} erasure(s) re-applied, {how}; "
                  f"open to the application; health "
                  f"{'ok' if done.health.get('ok') else 'FAILED'}")
    if not done.health.get("ok"):
        raise typer.Exit(1)


@app.command("prune")
def prune_(directory: DirOption = None,
           dry_run: Annotated[bool, typer.Option("--dry-run")] = False,
           as_json: JsonOption = False) -> None:
    """Keep the newest backup of each of the last N days, weeks and months (settings)."""
    from neonpro.services import backup as svc

    with _box(directory) as (box, where):
        plan = svc.prune(box, directory=where, dry_run=dry_run)
    if as_json:
        print_json({"keep": {b.id: plan.reasons[b.id] for b in plan.keep},
                    "delete": [b.id for b in plan.delete], "dry_run": dry_run})
        return
    for b in plan.keep:
        out.print(f"keep   {b.id} ({', '.join(plan.reasons[b.id])})")
    for b in plan.delete:
        out.print(f"{'would delete' if dry_run else 'deleted'} {b.id}")


@app.command()
def drill(directory: DirOption = None, as_json: JsonOption = False,
          jobs: Annotated[int, typer.Option(min=1, max=16)] = 2,
          wal_wait: Annotated[float, typer.Option(help="Seconds to wait for WAL archiving.")]
          = 420.0) -> None:
    """Backup, restore into a scratch database, verify; print the measured RTO and RPO."""
    from neonpro.services import backup as svc

    with _box(directory) as (box, where):
        report = svc.drill(box, directory=where, jobs=jobs, wal_wait_s=wal_wait)
    if as_json:
        print_json(report.as_dict())
    else:
        for problem in report.problems:
            out.print(f"[red]FAIL[/] {problem}")
        out.print(f"RTO {report.rto_seconds:.1f} s (target <= {svc.RTO_TARGET_S} s)")
        if report.rpo_seconds is None:
            out.print(f"RPO not measured: {report.rpo_basis}")
        else:
            out.print(f"RPO {report.rpo_seconds:.1f} s (target <= {svc.RPO_TARGET_S} s; "
                      f"{report.rpo_basis})")
        out.print(f"steps: {durations(report.steps)}", highlight=False)
        out.print(f"drill {'PASSED' if report.ok else 'FAILED'} (backup {report.backup_id})")
    if not report.ok:
        raise typer.Exit(1)
