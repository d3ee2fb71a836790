"""``neonpro staff``: staff accounts that sign in (POST /auth/login, the console)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from neonpro.domain.vocabulary import ClinicRole
from neonpro.entrypoints.cli._common import container, out, print_json, typer_app

app = typer_app(help="Staff accounts: add one to a clinic, to sign in with.",
                no_args_is_help=True)


@app.command()
def add(
    clinic: Annotated[uuid.UUID, typer.Option(help="The clinic the account is a member of.")],
    email: Annotated[str, typer.Option(help="The e-mail address the account signs in with.")],
    role: Annotated[ClinicRole, typer.Option(help="admin, professional, receptionist or dpo")],
    name: Annotated[str | None, typer.Option(
        help="The name shown for the account (default: the e-mail's local part).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create a staff account and its membership of CLINIC in ROLE; the password is asked
    for (twice, not echoed), never taken from the command line. Audited like every staff
    change; neither the e-mail nor the password is printed or logged."""
    from neonpro.domain.actors import SystemActors
    from neonpro.domain.values import Email
    from neonpro.services import auth

    address = Email.parse(email).address  # a bad address fails before the password is asked
    with container() as box:  # an unknown clinic fails here, before the password is asked
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True,
                                err=True)
        user, member = auth.add_account(
            box.service_uow(SystemActors.CLI), clinic, address,
            name if name is not None else address.split("@")[0], password, role,
            passwords=box.passwords)
    if as_json:
        print_json({"user_id": str(user.id), "clinic_id": str(member.clinic_id),
                    "role": role.value})
        return
    out.print(f"staff account {user.id} added to clinic {member.clinic_id} as "
              f"{role.value}: it signs in with POST /auth/login", highlight=False, soft_wrap=True)
