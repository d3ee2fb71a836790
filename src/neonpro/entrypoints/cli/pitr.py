"""``neonpro pitr``: point-in-time recovery with pgBackRest (setup, backup, info, restore)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer

from neonpro.config import Settings
from neonpro.domain.actors import SystemActors
from neonpro.domain.vocabulary import AuditAction
from neonpro.entrypoints.cli._common import console, container, fail, out, print_json
from neonpro.services import backup as backups
from neonpro.services import pitr as svc

app = typer.Typer(help="Point-in-time recovery with pgBackRest (WAL archiving).",
                  no_args_is_help=True)
JsonOption = Annotated[bool, typer.Option("--json")]


def _settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        fail(f"invalid settings: {type(exc).__name__}")


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
    try:
        cluster = svc.setup(_settings(), pgdata, port, socket_dir=socket_dir, bin_dir=bin_dir,
                            stanza=stanza, restart=restart)
    except (svc.PitrError, OSError, psycopg.Error) as exc:
        fail(str(exc).splitlines()[0][:300])
    _show({"stanza": cluster.stanza, "config": str(cluster.config)}, as_json,
          f"WAL archiving on; stanza {cluster.stanza} checked ({cluster.config})")


@app.command()
def backup(kind: Annotated[str, typer.Option("--type", help="full, diff or incr")] = "full",
           as_json: JsonOption = False) -> None:
    """Take a base backup into the pgBackRest repository."""
    try:
        done = svc.base_backup(_settings(), kind)
    except svc.PitrError as exc:
        fail(str(exc))
    _show(done, as_json, f"base backup {done['label']} ({done['type']}, "
          f"{done['bytes'] / 1e6:.1f} MB) in {done['seconds']:.1f} s")


@app.command()
def info(as_json: JsonOption = False) -> None:
    """The repository: base backups and the archived WAL range."""
    try:
        data = svc.info(_settings())
    except svc.PitrError as exc:
        fail(str(exc))
    if as_json:
        print_json(data)
        return
    out.print(f"stanza {data['stanza']}: {data['status']}; WAL {data['wal']['min']} .. "
              f"{data['wal']['max']}")
    for b in data["backups"]:
        out.print(f"  {b['label']} {b['type']} {b['start']} .. {b['stop']}")


def _pending(settings: Settings) -> Path:
    return settings.pitr_dir / "pending-erasures.json"


def _save_pending(settings: Settings) -> None:
    warnings: list[str] = []
    with container() as box:
        try:
            erasures = backups.known_erasures(box, warnings)
        except backups.BackupError as exc:
            fail(str(exc))
    for warning in warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    file = _pending(settings)
    file.write_text(json.dumps(erasures))
    file.chmod(0o600)


def _reapply(settings: Settings, target: str) -> int:
    file = _pending(settings)
    erasures = json.loads(file.read_text()) if file.is_file() else []
    try:
        with container() as box:
            count = backups.reapply_ledger(box, erasures, SystemActors.BACKUP)
            backups.record_event(box, AuditAction.RESTORE, "pitr", {
                "target_time": target, "reapplied_erasures": count})
    except (psycopg.Error, backups.BackupError) as exc:
        fail(f"the cluster is restored, but the erasures were NOT re-applied "
             f"({type(exc).__name__}): run `neonpro pitr reapply` once the database answers")
    file.unlink(missing_ok=True)
    return count


@app.command()
def reapply(as_json: JsonOption = False) -> None:
    """Re-apply the erasures saved by an interrupted `pitr restore` (and the live ledger's)."""
    settings = _settings()
    if not _pending(settings).is_file():
        _save_pending(settings)
    count = _reapply(settings, "after an interrupted restore")
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
    as_json: JsonOption = False,
) -> None:
    """Stop the cluster, restore it to --to, start it; then re-apply later erasures."""
    settings = _settings()
    if not yes and not typer.confirm(
            f"Every change after {to.isoformat()} on the whole cluster is discarded. Go on?"):
        fail("not confirmed", 2)
    if reapply:
        _save_pending(settings)  # read while the cluster still holds the later erasures
    try:
        done = svc.restore(settings, to)
    except (svc.PitrError, OSError, subprocess.SubprocessError) as exc:
        fail(str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
    done["reapplied_erasures"] = _reapply(settings, done["target"]) if reapply else 0
    _show(done, as_json, f"restored to {done['target']} in {done['seconds']:.1f} s; "
          f"{done.get('reapplied_erasures', 0)} erasure(s) re-applied")
