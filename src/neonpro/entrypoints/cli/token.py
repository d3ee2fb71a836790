"""``neonpro token``: a development token for the HTTP API."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from neonpro.adapters.auth import TokenCodec
from neonpro.config import Environment
from neonpro.domain.actors import SystemActors
from neonpro.domain.vocabulary import ClinicRole
from neonpro.entrypoints.cli._common import container, fail
from neonpro.services import auth


def token(
    clinic: Annotated[uuid.UUID, typer.Option(help="The clinic the token is for.")],
    role: Annotated[ClinicRole, typer.Option(help="admin, professional, receptionist or dpo")],
    user: Annotated[uuid.UUID | None, typer.Option(help="The user id (default: random).")] = None,
) -> None:
    """Print a bearer token for CLINIC and ROLE (refused in production)."""
    with container() as box:
        if box.settings.environment is Environment.PRODUCTION:
            fail("development tokens are refused in production: sign in with POST /auth/login")
        try:
            codec = TokenCodec(box.settings, box.keyring)
        except ValueError as exc:
            fail(str(exc))
        issued = codec.mint(user or uuid.uuid4(), clinic, role)
        auth.open_development_session(box.service_uow(SystemActors.CLI), issued)
        typer.echo(issued.token)
