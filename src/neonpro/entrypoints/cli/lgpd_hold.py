"""``neonpro lgpd legal-hold-read`` and ``neonpro lgpd policies``: the audited read of a
blocked record and the retention policies (attached to the ``lgpd`` group in ``app.py``).

Both act for a named person with a role (``--user``, ``--role``): the law lets the DPO and
the clinic's administrator do this, and the audit trail names who did. Any other role is
refused (one line, exit 1), and the refusal is audited.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from neonpro.domain.actors import Actor
from neonpro.domain.errors import Forbidden
from neonpro.domain.vocabulary import ClinicRole, DataCategory, RetentionAction, RetentionTrigger
from neonpro.entrypoints.cli._common import container, fail, out, print_json

if TYPE_CHECKING:
    from neonpro.bootstrap import Container
    from neonpro.services.retention import PolicyRead

ClinicOption = Annotated[uuid.UUID, typer.Option(help="The clinic's id.")]
UserOption = Annotated[uuid.UUID, typer.Option(
    "--user", help="Who acts: the staff user's id (recorded in the audit trail).")]
RoleOption = Annotated[ClinicRole, typer.Option(
    "--role", help="The acting user's role in the clinic: dpo or admin.")]
JsonFlag = Annotated[bool, typer.Option("--json")]

policies = typer.Typer(help="Retention policies: create, list, retire (admin and DPO).",
                       no_args_is_help=True)


def legal_hold_read(
    patient: Annotated[uuid.UUID, typer.Argument(help="The blocked patient.")],
    clinic: ClinicOption,
    justification: Annotated[str, typer.Option(
        help="Why the blocked record must be read (10 to 1000 characters; kept encrypted "
             "in the audit trail).")],
    user: UserOption,
    role: RoleOption,
) -> None:
    """Read a record blocked under a legal hold (DPO or admin), audited with the
    justification; the record is printed as JSON on stdout."""
    from neonpro.services import erasure as erasure_service

    with container() as box:
        actor = _acting(box, clinic, user, role)
        held = erasure_service.legal_hold_read(box, box.cipher, clinic, patient, actor,
                                                justification)
    print_json({"patient": held.patient.model_dump(mode="json"),
                "appointments": [a.model_dump(mode="json") for a in held.appointments]})


def _acting(box: Container, clinic: uuid.UUID, user: uuid.UUID, role: ClinicRole) -> Actor:
    """The person the command acts for: an active staff user, an active member of the
    clinic in that role (the audit trail names them). Anyone else is refused, and the
    refusal, an attempt to act as someone one is not, is audited like every other."""
    from sqlalchemy import text

    actor = Actor(user, role.value)
    with box.uow(clinic, actor) as tx:  # a read: rolled back; a refusal is recorded
        held = tx.connection.execute(text(_MEMBER), {"clinic": clinic, "user": user,
                                                     "role": role.value}).first()
        if held is None:
            raise Forbidden(f"user {user} is not an active {role.value} of clinic {clinic}")
    return actor


_MEMBER = ("SELECT 1 FROM clinic_memberships m JOIN staff_users u ON u.id = m.user_id "
           "WHERE m.clinic_id = :clinic AND m.user_id = :user AND m.role = :role "
           "AND m.is_active AND u.is_active")


def _show(rows: list[PolicyRead], as_json: bool) -> None:
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    table = Table("policy", "category", "trigger", "action", "days", "legal reference",
                  "created", "retired")
    for r in rows:
        table.add_row(str(r.id), r.data_category, r.trigger, r.action, str(r.period_days),
                      r.legal_reference, r.created_at.isoformat(timespec="minutes"),
                      r.retired_at.isoformat(timespec="minutes") if r.retired_at else "-")
    out.print(table)


@policies.command("create")
def create(
    clinic: ClinicOption,
    category: Annotated[DataCategory, typer.Option(help="The data category.")],
    trigger: Annotated[RetentionTrigger, typer.Option(help="What starts the period.")],
    action: Annotated[RetentionAction, typer.Option(help="What happens at its end.")],
    legal_reference: Annotated[str, typer.Option(help="The legal ground.")],
    user: UserOption,
    role: RoleOption,
    days: Annotated[int | None, typer.Option(help="The period in days.")] = None,
    years: Annotated[int | None, typer.Option(help="The period in years.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a policy; refused below the legal floor (clinical records: 20 years)."""
    from pydantic import ValidationError

    from neonpro.services import retention as retention_service
    from neonpro.services.retention import PolicyCreate

    try:
        data = PolicyCreate(data_category=category, trigger=trigger, action=action,
                            period_days=days, period_years=years,
                            legal_reference=legal_reference)
    except ValidationError as exc:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) or "period" for e in exc.errors())
        fail(f"invalid policy: {fields} ({exc.errors()[0]['msg']})")
    with container() as box:
        actor = _acting(box, clinic, user, role)
        policy = retention_service.create_policy(box.uow(clinic, actor), data)
    _show([policy], as_json)


@policies.command("list")
def list_(
    clinic: ClinicOption,
    user: UserOption,
    role: RoleOption,
    include_retired: Annotated[bool, typer.Option(
        "--all", help="Retired policies too (the whole history).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The clinic's active policies (--all: with the retired ones)."""
    from neonpro.services import retention as retention_service

    with container() as box:
        actor = _acting(box, clinic, user, role)
        rows = retention_service.list_policies(box.uow(clinic, actor),
                                               include_retired=include_retired)
    _show(rows, as_json)


@policies.command("retire")
def retire(
    policy: Annotated[uuid.UUID, typer.Argument(help="The policy to retire.")],
    clinic: ClinicOption,
    user: UserOption,
    role: RoleOption,
    as_json: JsonFlag = False,
) -> None:
    """Stop applying a policy; it stays in the history."""
    from neonpro.services import retention as retention_service

    with container() as box:
        actor = _acting(box, clinic, user, role)
        done = retention_service.retire_policy(box.uow(clinic, actor), policy)
    _show([done], as_json)
