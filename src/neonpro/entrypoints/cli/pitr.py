"""``neonpro pitr``: point-in-time recovery with pgBackRest (setup, backup, info, restore)."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from neonpro.domain.actors import SystemActors
from neonpro.domain.vocabulary import AuditAction
from neonpro.entrypoints.cli._common import (
    console,
    container,
    fail,
    os_error,
    out,
    print_json,
    typer_app,
)

if TYPE_CHECKING:
    from neonpro.domain.ports_backup import PitrHost

app = typer_app(help="Point-in-time recovery with pgBackRest (WAL archiving).",
                  no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json")]
AcceptRiskOption = Annotated[bool, typer.Option(
    "--accept-erasure-risk",
    help="Open the database even though erasures decided after the target time could not "
         "all be read (recorded in the audit trail as a critical event).")]
HELD = 4  # exit code: restored, but closed to the application until erasures are proven


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return os_error(exc)
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


def _host() -> PitrHost:
    """This machine's pgBackRest and cluster (no database connection is opened)."""
    from neonpro.bootstrap import Container
    from neonpro.config import Settings

    try:
        settings = Settings()
    except ValueError as exc:
        fail(f"invalid settings: {type(exc).__name__}")
    return Container(settings).pitr_host


def _show(data: dict[str, Any], as_json: bool, line: str) -> None:
    if as_json:
        print_json(data)
    else:
        out.print(line)


@app.command()
def setup(
    pgdata: Annotated[Path, typer.Option(help="The cluster's data directory.")],
    port: Annotated[int, typer.Option(help="The cluster's port.")] = 5432,
    socket_dir: Annotated[Path | None, typer.Option(help="Its Unix socket directory.")] = None,
    bin_dir: Annotated[Path | None, typer.Option(help="Its pg_ctl directory.")] = None,
    stanza: Annotated[str, typer.Option(help="pgBackRest stanza name.")] = "neonpro",
    restart: Annotated[bool, typer.Option(help="Restart to switch archiving on.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Configure pgBackRest and WAL archiving for a cluster (restarts it)."""
    import psycopg

    from neonpro.services import pitr as svc

    try:
        cluster = svc.setup(_host(), pgdata, port, socket_dir=socket_dir, bin_dir=bin_dir,
                            stanza=stanza, restart=restart)
    except (svc.PitrError, OSError, psycopg.Error, subprocess.SubprocessError) as exc:
        fail(_one_line(exc))
    _show({"stanza": cluster.stanza, "config": str(cluster.config)}, as_json,
          f"WAL archiving on; stanza {cluster.stanza} checked ({cluster.config})")


@app.command()
def backup(kind: Annotated[str, typer.Option("--type", help="full, diff or incr")] = "full",
           as_json: JsonOption = False) -> None:
    """Take a base backup into the pgBackRest repository."""
    from neonpro.services import pitr as svc

    try:
        done = svc.base_backup(_host(), kind)
    except (svc.PitrError, OSError, subprocess.SubprocessError, ValueError) as exc:
        fail(_one_line(exc))
    _show(done, as_json, f"base backup {done['label']} ({done['type']}, "
          f"{done['bytes'] / 1e6:.1f} MB) in {done['seconds']:.1f} s")


@app.command()
def info(as_json: JsonOption = False) -> None:
    """The repository: base backups and the archived WAL range."""
    from neonpro.services import pitr as svc

    try:
        data = svc.info(_host())
    except (svc.PitrError, OSError, subprocess.SubprocessError, ValueError) as exc:
        fail(_one_line(exc))
    if as_json:
        print_json(data)
        return
    out.print(f"stanza {data['stanza']}: {data['status']}; WAL {data['wal']['min']} .. "
              f"{data['wal']['max']}")
    for b in data["backups"]:
        out.print(f"  {b['label']} {b['type']} {b['start']} .. {b['stop']}")


def _save_pending(host: PitrHost) -> bool:
    """Save the erasures a rewind must not lose, read while the cluster still holds them;
    whether they are complete (the live ledger answered)."""
    from neonpro.services import backup as backups
    from neonpro.services import pitr as svc

    warnings: list[str] = []
    with container() as box:
        try:
            erasures = backups.known_erasures(box, warnings)
        except backups.BackupError as exc:
            fail(str(exc))
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    proven = not warnings
    try:
        svc.save_pending_erasures(host, erasures, proven=proven)
    except OSError as exc:
        fail(f"the erasures to re-apply could not be saved, nothing was restored: "
             f"{os_error(exc)}")
    return proven


def _reapply(host: PitrHost, target: str, *, accept_erasure_risk: bool) -> int:
    """Close the database, re-apply the saved erasures, and open it again only if they are
    complete (or the risk is accepted, which the audit trail records)."""
    import psycopg

    from neonpro.services import backup as backups
    from neonpro.services import pitr as svc

    erasures, proven = svc.load_pending_erasures(host)
    why = ("erasures decided after the target time may be missing (the live erasure ledger "
           "could not be read before the rewind)")
    try:
        with container() as box:
            backups.hold_live(box, f"point-in-time restore to {target}: erasures not "
                                   f"re-applied yet; run `neonpro pitr reapply`")
            count = backups.reapply_ledger(box, erasures, SystemActors.BACKUP)
            if proven or accept_erasure_risk:
                backups.lift_live(box)
                if not proven:
                    backups.record_accepted_risk(box, "pitr", [why], SystemActors.BACKUP)
            else:
                backups.hold_live(box, f"point-in-time restore to {target}: {why}; run "
                                       "`neonpro pitr reapply --accept-erasure-risk` to open it")
            backups.record_event(box, AuditAction.RESTORE, "pitr", {
                "target_time": target, "reapplied_erasures": count,
                "erasures_proven": proven, "held": not (proven or accept_erasure_risk)})
    except (psycopg.Error, backups.BackupError, OSError) as exc:
        fail(f"the cluster is restored, but the erasures were NOT re-applied "
             f"({type(exc).__name__}): run `neonpro pitr reapply` once the database answers")
    if not (proven or accept_erasure_risk):
        fail(f"restored, {count} erasure(s) re-applied, but closed to the application: {why}; "
             "`neonpro pitr reapply --accept-erasure-risk` opens it (recorded in the audit "
             "trail)", HELD)
    svc.forget_pending_erasures(host)
    return count


@app.command()
def reapply(accept_erasure_risk: AcceptRiskOption = False, as_json: JsonOption = False) -> None:
    """Re-apply the erasures saved by an interrupted `pitr restore`, and open the database
    to the application again once they are complete (or the risk is accepted)."""
    host = _host()
    count = _reapply(host, "after an interrupted restore",
                     accept_erasure_risk=accept_erasure_risk)
    _show({"reapplied_erasures": count}, as_json, f"{count} erasure(s) re-applied")


@app.command()
def restore(
    to: Annotated[datetime, typer.Option(
        "--to", help="Target time with zone, e.g. 2026-11-27T10:15:00+00:00.",
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"])],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    reapply: Annotated[bool, typer.Option(
        help="Re-apply erasures recorded after the target time (needs NEONPRO_DATABASE_URL "
             "on this cluster).")] = True,
    accept_erasure_risk: AcceptRiskOption = False,
    as_json: JsonOption = False,
) -> None:
    """Stop the cluster, restore it to --to, start it; then re-apply later erasures.

    Exit 4 when the erasures decided after --to could not all be read beforehand (the
    database did not answer): it is then left closed to the application role."""
    from neonpro.services import pitr as svc

    host = _host()
    if not yes and not typer.confirm(
            f"Every change after {to.isoformat()} on the whole cluster is discarded. Go on?"):
        fail("not confirmed", 2)
    if reapply:
        _save_pending(host)  # read while the cluster still holds the later erasures
    try:
        done = svc.restore(host, to)
    except (svc.PitrError, OSError, subprocess.SubprocessError) as exc:
        fail(_one_line(exc))
    done["reapplied_erasures"] = _reapply(
        host, done["target"], accept_erasure_risk=accept_erasure_risk) if reapply else 0
    _show(done, as_json, f"restored to {done['target']} in {done['seconds']:.1f} s; "
          f"{done.get('reapplied_erasures', 0)} erasure(s) re-applied")
