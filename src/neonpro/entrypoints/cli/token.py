"""``neonpro token``: a development token for the HTTP API."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import typer

from neonpro.domain.vocabulary import ClinicRole
from neonpro.entrypoints.cli._common import container, fail

if TYPE_CHECKING:
    from neonpro.bootstrap import Container
    from neonpro.domain.ports_auth import IssuedToken


def development_token(box: Container, clinic: uuid.UUID, role: ClinicRole,
                      user: uuid.UUID | None = None) -> IssuedToken:
    """A bearer token for ``clinic`` and ``role`` with its session (it names no account);
    refused in production, where staff sign in with POST /auth/login."""
    from neonpro.adapters.auth import TokenCodec
    from neonpro.config import Environment
    from neonpro.domain.actors import SystemActors
    from neonpro.services import auth

    if box.settings.environment is Environment.PRODUCTION:
        fail("development tokens are refused in production: sign in with POST /auth/login")
    try:
        codec = TokenCodec(box.settings, box.keyring)
    except ValueError as exc:
        fail(str(exc))
    issued = codec.mint(user or uuid.uuid4(), clinic, role)
    return auth.open_development_session(box.service_uow(SystemActors.CLI), issued)


def token(
    clinic: Annotated[uuid.UUID, typer.Option(help="The clinic the token is for.")],
    role: Annotated[ClinicRole, typer.Option(help="admin, professional, receptionist or dpo")],
    user: Annotated[uuid.UUID | None, typer.Option(help="The user id (default: random).")] = None,
) -> None:
    """Print a bearer token for CLINIC and ROLE (refused in production)."""
    with container() as box:
        issued = development_token(box, clinic, role, user)
    typer.echo(issued.token)
