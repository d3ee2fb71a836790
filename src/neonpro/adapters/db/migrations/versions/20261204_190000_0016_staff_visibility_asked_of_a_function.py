"""staff visibility asked of a function: the same rule, and a policy Citus accepts

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 19:00:00+00:00

The application role sees a staff account when it is its own or a member of the
transaction's clinic. The membership was a subquery in the policy of ``staff_users``; a
policy on a distributed (Citus) table may not hold a subquery, so the question is asked of
``neonpro_member_of_current_clinic`` (the owner's, SECURITY DEFINER, reading the
memberships through the owner's policy of revision 0015). Who sees what does not change.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from neonpro.adapters.db.migrations import migration_roles

revision: str = '0016'
down_revision: str | Sequence[str] | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen copy of security.py at this revision; {owner}, {app}, {service} are role names
UPGRADE_SQL: tuple[str, ...] = (
    'DROP POLICY IF EXISTS staff_users_member_select ON staff_users',
    "CREATE FUNCTION neonpro_member_of_current_clinic(p_user_id uuid) RETURNS boolean\nLANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$\nDECLARE\n  v_clinic uuid := NULLIF(current_setting('app.clinic_id', true), '')::uuid;\nBEGIN\n  RETURN v_clinic IS NOT NULL AND EXISTS (SELECT 1 FROM clinic_memberships m\n    WHERE m.clinic_id = v_clinic AND m.user_id = p_user_id);\nEND\n$$",
    'REVOKE ALL ON FUNCTION neonpro_member_of_current_clinic(uuid) FROM PUBLIC',
    'GRANT EXECUTE ON FUNCTION neonpro_member_of_current_clinic(uuid) TO {app}',
    "CREATE POLICY staff_users_member_select ON staff_users AS PERMISSIVE FOR SELECT TO {app} USING (id = NULLIF(current_setting('app.actor_id', true), '')::uuid OR neonpro_member_of_current_clinic(staff_users.id))",
)
DOWNGRADE_SQL: tuple[str, ...] = (
    "DROP POLICY IF EXISTS staff_users_member_select ON staff_users",
    "CREATE POLICY staff_users_member_select ON staff_users AS PERMISSIVE FOR SELECT TO {app} USING (id = NULLIF(current_setting('app.actor_id', true), '')::uuid OR EXISTS (SELECT 1 FROM clinic_memberships m WHERE m.user_id = staff_users.id AND m.clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid))",
    "DROP FUNCTION IF EXISTS neonpro_member_of_current_clinic(uuid)",
)


def _run(statements: tuple[str, ...]) -> None:
    roles = migration_roles()
    for statement in statements:
        op.execute(statement.replace("{owner}", roles.owner).replace("{app}", roles.app)
                   .replace("{service}", roles.service)
                   .replace("{legal_hold}", roles.legal_hold))


def upgrade() -> None:
    _run(UPGRADE_SQL)


def downgrade() -> None:
    _run(DOWNGRADE_SQL)
