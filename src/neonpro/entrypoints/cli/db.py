"""``neonpro db``: schema management and the health check."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from neonpro.adapters.db import migrate, schema_check
from neonpro.adapters.db.health import check_health
from neonpro.adapters.db.housekeeping import prune_expired
from neonpro.entrypoints.cli._common import container, fail, out, print_json, typer_app

app = typer_app(help="Manage the database schema and check its health.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command()
def upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    with container() as box:
        db = box.database
        migrate.upgrade(db.owner_url, db.roles, revision,
                        audit_key=box.keyring.active_audit_key)
        out.print(f"at {', '.join(migrate.current_revisions(db.owner_url)) or 'base'}")


@app.command()
def downgrade(revision: Annotated[str, typer.Argument(help="Target revision, or 'base'.")]) -> None:
    """Revert migrations down to REVISION. Roles are never dropped (they are cluster-wide)."""
    with container() as box:
        db = box.database
        migrate.downgrade(db.owner_url, db.roles, revision)
        out.print(f"at {', '.join(migrate.current_revisions(db.owner_url)) or 'base'}")


@app.command()
def current(as_json: JsonFlag = False) -> None:
    """Show the database's revision and the code's head."""
    with container() as box:
        revs = migrate.revisions(box.database.owner_url)
    data = {"current": list(revs.current), "head": revs.head, "at_head": revs.at_head}
    if as_json:
        print_json(data)
    else:
        out.print(f"current: {', '.join(revs.current) or 'base'}  head: {revs.head}"
                  f"{'' if revs.at_head else '  (not at head)'}")


@app.command()
def history() -> None:
    """List every revision from base to head."""
    table = Table("revision", "down revision", "message")
    for rev, down, message in migrate.history():
        table.add_row(rev, down or "base", message.splitlines()[0] if message else "")
    out.print(table)


@app.command()
def check() -> None:
    """Fail (exit 1), naming each difference, when the models and the migrations disagree.

    Compares tables, columns, constraints, indexes, RLS flags, policies, triggers,
    functions and grants of a database built by the migrations with one built from
    the models. Needs permission to create scratch databases on the server.
    """
    with container() as box:
        db = box.database
        report = schema_check.check_drift(db.owner_url, db.roles)
    if not report.clean:
        for line in report.lines():
            out.print(line, highlight=False, markup=False)
        fail(f"schema drift: {len(report.lines())} difference(s) between models and migrations")
    out.print("no drift: migrations at head match the models")


@app.command()
def health(as_json: JsonFlag = True) -> None:
    """Check connectivity, latency, migrations, RLS, the tenant role and that a write commits
    in time; exit 1 on failure."""
    with container() as box:
        report = check_health(box.database)
    if as_json:
        print_json(report)
    else:
        for name, result in report["checks"].items():
            out.print(f"{name}: {'ok' if result['ok'] else 'FAIL'}")
    if not report["ok"]:
        raise typer.Exit(1)


@app.command()
def prune(as_json: JsonFlag = False) -> None:
    """Delete commit tokens older than ten minutes and expired idempotency keys (the API
    does it every minute; a database written only by the CLI needs it now and then)."""
    with container() as box:
        pruned = prune_expired(box.database)
    if as_json:
        print_json(vars(pruned))
    else:
        out.print(f"pruned {pruned.commit_tokens} commit token(s) and "
                  f"{pruned.idempotency_keys} expired idempotency key(s)")
