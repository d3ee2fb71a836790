"""Tokens and problem+json checks for the HTTP end-to-end tests."""

from __future__ import annotations

import uuid

from neonpro.adapters.auth import TokenCodec
from neonpro.bootstrap import Container
from neonpro.domain.vocabulary import ClinicRole


def dev_token(box: Container, clinic: uuid.UUID, role: str,
              user: uuid.UUID | None = None) -> str:
    """A development token with its session (as ``neonpro token`` makes one)."""
    from neonpro.domain.actors import SystemActors  # noqa: PLC0415
    from neonpro.services import auth  # noqa: PLC0415

    issued = TokenCodec(box.settings, box.keyring).mint(user or uuid.uuid4(), clinic,
                                                        ClinicRole(role))
    return auth.open_development_session(box.service_uow(SystemActors.CLI), issued).token


def headers(box: Container, clinic: uuid.UUID, role: str,
            user: uuid.UUID | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {dev_token(box, clinic, role, user)}"}


def is_problem(response: object, status: int, kind: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["type"] == f"https://neonpro.dev/problems/{kind}"
    assert body["status"] == status
    return body


def members(box: Container, clinic: uuid.UUID) -> dict[str, str]:
    """One active staff member of ``clinic`` per role: the CLI acts only for a real member
    in the role it names (``--user``, ``--role``)."""
    from neonpro.domain.actors import SystemActors  # noqa: PLC0415
    from neonpro.domain.schemas.clinic import StaffUserCreate  # noqa: PLC0415
    from neonpro.services import clinics  # noqa: PLC0415

    found = {}
    for role in ClinicRole:
        user, _ = clinics.add_staff_member(box.service_uow(SystemActors.CLI), clinic,
                                           StaffUserCreate(
                                               email=f"{role.value}.{clinic.hex[:12]}@exemplo.test",
                                               display_name=f"Membro {role.value}",
                                               password_hash="!"), role)
        found[role.value] = str(user.id)
    return found


def as_member(argv: list[str], staff: dict[str, str]) -> list[str]:
    """``argv`` with its ``--user`` replaced by the member holding its ``--role``."""
    out = list(argv)
    if "--user" in out and "--role" in out:
        role = out[out.index("--role") + 1]
        if role in staff:
            out[out.index("--user") + 1] = staff[role]
    return out


def one_line(stderr: str) -> None:
    """One CLI error line (log lines, JSON on stderr, may precede it), no traceback."""
    assert "Traceback" not in stderr
    assert len([line for line in stderr.splitlines() if line.startswith("error:")]) == 1, stderr
    assert stderr.strip().splitlines()[-1].startswith("error:"), stderr
