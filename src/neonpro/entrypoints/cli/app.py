"""Top-level Typer application: sub-commands are registered here."""

from __future__ import annotations

import typer

from neonpro.entrypoints.cli import (
    audit,
    backup,
    clinics,
    consent,
    db,
    demo,
    keys,
    lgpd,
    lgpd_erasure,
    lgpd_hold,
    lgpd_incidents,
    noshow,
    patients,
    pitr,
    serve,
    staff,
    token,
)
from neonpro.entrypoints.cli._common import CliGroup

app = typer.Typer(
    cls=CliGroup,  # every command's errors in one line (see _common)
    name="neonpro",
    help="neonpro: LGPD-compliant data management for Brazilian clinics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(audit.app, name="audit")
app.add_typer(backup.app, name="backup")
app.add_typer(clinics.app, name="clinics")
app.add_typer(consent.app, name="consent")
app.add_typer(demo.app, name="demo")
app.add_typer(keys.app, name="keys")
lgpd.app.command("erase")(lgpd_erasure.erase)
lgpd.app.command("retention")(lgpd_erasure.retention)
lgpd.app.command("incidents")(lgpd_incidents.incidents)
lgpd.app.command("disclosures")(lgpd_incidents.disclosures)
lgpd.app.command("legal-hold-read")(lgpd_hold.legal_hold_read)
lgpd.app.add_typer(lgpd_hold.policies, name="policies")
app.add_typer(lgpd.app, name="lgpd")
app.add_typer(patients.app, name="patients")
app.add_typer(pitr.app, name="pitr")
app.add_typer(noshow.app, name="noshow")
app.add_typer(staff.app, name="staff")
app.command("serve")(serve.serve)
app.command("token")(token.token)
