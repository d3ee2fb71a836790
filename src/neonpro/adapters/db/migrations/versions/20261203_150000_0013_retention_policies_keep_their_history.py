"""retention policies keep their history: created, listed, retired (never changed)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 15:00:00+00:00

* ``retention_policies`` gets ``created_by``, ``retired_at`` and ``retired_by``; a policy is
  retired, never updated nor deleted (a guard trigger, ``ENABLE ALWAYS``, holds every role
  to it), and one policy per clinic, category and trigger is active (a partial unique index
  replaces the unique constraint, so retired ones stay beside their successor).
* The application and service roles lose DELETE on the table (and the app its DELETE
  policy).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from neonpro.adapters.db.migrations import migration_roles

revision: str = '0013'
down_revision: str | Sequence[str] | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTOR_COMMENT = "actor: staff user id or named system actor; no FK on purpose"
# frozen copies of security.py and retention_sql.py at this revision; {app}, {service}
# are role names
UPGRADE_SQL: tuple[str, ...] = (
    'DROP POLICY IF EXISTS retention_policies_tenant_delete ON retention_policies',
    'REVOKE DELETE ON retention_policies FROM {app}',
    'REVOKE DELETE ON retention_policies FROM {service}',
    "CREATE FUNCTION neonpro_retention_policy_guard() RETURNS trigger\nLANGUAGE plpgsql AS $$\nBEGIN\n  IF TG_OP = 'UPDATE' AND OLD.retired_at IS NULL AND NEW.retired_at IS NOT NULL\n     AND NEW.retired_by IS NOT NULL\n     AND (to_jsonb(NEW) - ARRAY['retired_at', 'retired_by', 'updated_at'])\n       = (to_jsonb(OLD) - ARRAY['retired_at', 'retired_by', 'updated_at']) THEN\n    RETURN NEW;  -- retiring: once, nothing else changes\n  END IF;\n  RAISE EXCEPTION 'retention policies keep their history: a policy is retired, never '\n    'changed or deleted (% refused)', TG_OP\n    USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'retention_policies_history_guard';\nEND\n$$",
    'CREATE TRIGGER retention_policies_history_guard BEFORE UPDATE OR DELETE ON retention_policies FOR EACH ROW EXECUTE FUNCTION neonpro_retention_policy_guard()',
    'CREATE TRIGGER retention_policies_no_truncate BEFORE TRUNCATE ON retention_policies FOR EACH STATEMENT EXECUTE FUNCTION neonpro_refuse_change()',
    'ALTER TABLE retention_policies ENABLE ALWAYS TRIGGER retention_policies_history_guard',
    'ALTER TABLE retention_policies ENABLE ALWAYS TRIGGER retention_policies_no_truncate',
)
DOWNGRADE_SQL: tuple[str, ...] = (
    'DROP TRIGGER IF EXISTS retention_policies_history_guard ON retention_policies',
    'DROP TRIGGER IF EXISTS retention_policies_no_truncate ON retention_policies',
    'DROP FUNCTION IF EXISTS neonpro_retention_policy_guard()',
    "CREATE POLICY retention_policies_tenant_delete ON retention_policies AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT DELETE ON retention_policies TO {app}',
    'GRANT DELETE ON retention_policies TO {service}',
)


def _run(statements: tuple[str, ...]) -> None:
    roles = migration_roles()
    for statement in statements:
        op.execute(statement.replace("{owner}", roles.owner).replace("{app}", roles.app)
                   .replace("{service}", roles.service)
                   .replace("{legal_hold}", roles.legal_hold))


def upgrade() -> None:
    op.add_column('retention_policies', sa.Column('created_by', sa.UUID(), nullable=True,
                                                  comment=ACTOR_COMMENT))
    op.add_column('retention_policies', sa.Column('retired_at', sa.DateTime(timezone=True),
                                                  nullable=True))
    op.add_column('retention_policies', sa.Column('retired_by', sa.UUID(), nullable=True,
                                                  comment=ACTOR_COMMENT))
    op.create_check_constraint(op.f('ck_retention_policies_retired_by_whom'),
                               'retention_policies',
                               '(retired_at IS NULL) = (retired_by IS NULL)')
    op.drop_constraint('uq_retention_policies_clinic_id_data_category_trigger',
                       'retention_policies', type_='unique')
    op.create_index('uq_retention_policies_active', 'retention_policies',
                    ['clinic_id', 'data_category', 'trigger'], unique=True,
                    postgresql_where=sa.text('retired_at IS NULL'))
    _run(UPGRADE_SQL)


def downgrade() -> None:
    _run(DOWNGRADE_SQL)
    # retired policies go: below this revision a policy is one row per category and trigger
    # as the owner: the table forces row-level security and has no owner's policy
    op.execute('ALTER TABLE retention_policies NO FORCE ROW LEVEL SECURITY')
    op.execute('DELETE FROM retention_policies WHERE retired_at IS NOT NULL')
    op.execute('ALTER TABLE retention_policies FORCE ROW LEVEL SECURITY')
    op.drop_index('uq_retention_policies_active', table_name='retention_policies')
    op.create_unique_constraint('uq_retention_policies_clinic_id_data_category_trigger',
                                'retention_policies', ['clinic_id', 'data_category', 'trigger'])
    op.drop_constraint(op.f('ck_retention_policies_retired_by_whom'), 'retention_policies',
                       type_='check')
    op.drop_column('retention_policies', 'retired_by')
    op.drop_column('retention_policies', 'retired_at')
    op.drop_column('retention_policies', 'created_by')
