"""erasure ledger, blocked rows and the legal-hold role

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 13:49:52.746238+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from neonpro.adapters.db.migrations import migration_roles

revision: str = '0006'
down_revision: str | Sequence[str] | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# frozen copies of security.py at this revision; {app}, {legal_hold}... are role names
SECURITY_SQL: tuple[str, ...] = (
    'DROP POLICY patients_tenant_select ON patients',
    'DROP POLICY patients_tenant_update ON patients',
    'DROP POLICY patients_tenant_delete ON patients',
    "CREATE POLICY patients_tenant_select ON patients AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid AND blocked_at IS NULL)",
    "CREATE POLICY patients_tenant_update ON patients AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid AND blocked_at IS NULL) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY patients_tenant_delete ON patients AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid AND blocked_at IS NULL)",
    'DROP POLICY appointments_tenant_select ON appointments',
    'DROP POLICY appointments_tenant_update ON appointments',
    'DROP POLICY appointments_tenant_delete ON appointments',
    "CREATE POLICY appointments_tenant_select ON appointments AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid AND blocked_at IS NULL)",
    "CREATE POLICY appointments_tenant_update ON appointments AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid AND blocked_at IS NULL) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY appointments_tenant_delete ON appointments AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid AND blocked_at IS NULL)",
    "CREATE POLICY patients_legal_hold_select ON patients AS PERMISSIVE FOR SELECT TO {legal_hold} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT ON patients TO {legal_hold}',
    "CREATE POLICY appointments_legal_hold_select ON appointments AS PERMISSIVE FOR SELECT TO {legal_hold} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT ON appointments TO {legal_hold}',
    "CREATE POLICY consent_records_legal_hold_select ON consent_records AS PERMISSIVE FOR SELECT TO {legal_hold} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT ON consent_records TO {legal_hold}',
    "CREATE POLICY disclosures_legal_hold_select ON disclosures AS PERMISSIVE FOR SELECT TO {legal_hold} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT ON disclosures TO {legal_hold}',
    "CREATE POLICY data_subject_requests_legal_hold_select ON data_subject_requests AS PERMISSIVE FOR SELECT TO {legal_hold} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT ON data_subject_requests TO {legal_hold}',
    'ALTER TABLE erasure_ledger ENABLE ROW LEVEL SECURITY',
    'ALTER TABLE erasure_ledger FORCE ROW LEVEL SECURITY',
    'REVOKE ALL ON erasure_ledger FROM PUBLIC',
    "CREATE POLICY erasure_ledger_tenant_select ON erasure_ledger AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY erasure_ledger_tenant_insert ON erasure_ledger AS PERMISSIVE FOR INSERT TO {app} WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'GRANT SELECT, INSERT ON erasure_ledger TO {app}',
    'GRANT SELECT, INSERT ON erasure_ledger TO {service}',
)

DOWNGRADE_SQL: tuple[str, ...] = (
    'DROP POLICY IF EXISTS patients_legal_hold_select ON patients',
    'REVOKE ALL ON patients FROM {legal_hold}',
    'DROP POLICY IF EXISTS appointments_legal_hold_select ON appointments',
    'REVOKE ALL ON appointments FROM {legal_hold}',
    'DROP POLICY IF EXISTS consent_records_legal_hold_select ON consent_records',
    'REVOKE ALL ON consent_records FROM {legal_hold}',
    'DROP POLICY IF EXISTS disclosures_legal_hold_select ON disclosures',
    'REVOKE ALL ON disclosures FROM {legal_hold}',
    'DROP POLICY IF EXISTS data_subject_requests_legal_hold_select ON data_subject_requests',
    'REVOKE ALL ON data_subject_requests FROM {legal_hold}',
    'DROP POLICY patients_tenant_select ON patients',
    'DROP POLICY patients_tenant_update ON patients',
    'DROP POLICY patients_tenant_delete ON patients',
    "CREATE POLICY patients_tenant_select ON patients AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY patients_tenant_update ON patients AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY patients_tenant_delete ON patients AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    'DROP POLICY appointments_tenant_select ON appointments',
    'DROP POLICY appointments_tenant_update ON appointments',
    'DROP POLICY appointments_tenant_delete ON appointments',
    "CREATE POLICY appointments_tenant_select ON appointments AS PERMISSIVE FOR SELECT TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY appointments_tenant_update ON appointments AS PERMISSIVE FOR UPDATE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid) WITH CHECK (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
    "CREATE POLICY appointments_tenant_delete ON appointments AS PERMISSIVE FOR DELETE TO {app} USING (clinic_id = NULLIF(current_setting('app.clinic_id', true), '')::uuid)",
)


def _run(statements: tuple[str, ...]) -> None:
    roles = migration_roles()
    for statement in statements:
        op.execute(statement.replace("{owner}", roles.owner).replace("{app}", roles.app)
                   .replace("{service}", roles.service)
                   .replace("{legal_hold}", roles.legal_hold))


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('erasure_ledger',
    sa.Column('clinic_id', sa.UUID(), nullable=False),
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('patient_id', sa.UUID(), nullable=False, comment='the patient erased; no FK (a deleted patient leaves this)'),
    sa.Column('request_id', sa.UUID(), nullable=True, comment='the data-subject request, if any'),
    sa.Column('decided_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('decided_by', sa.UUID(), nullable=True, comment='actor: staff user id or named system actor; no FK on purpose'),
    sa.Column('outcome', sa.Text(), nullable=False, comment='blocked, anonymized or deleted'),
    sa.Column('decisions', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False, comment='category -> {action, legal_reference}; never personal values'),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinics.id'], name=op.f('fk_erasure_ledger_clinic_id_clinics'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('clinic_id', 'id', name=op.f('pk_erasure_ledger')),
    info={'scope': 'tenant'}
    )
    op.create_index(op.f('ix_erasure_ledger_clinic_id_decided_at'), 'erasure_ledger', ['clinic_id', 'decided_at'], unique=False)
    op.add_column('appointments', sa.Column('blocked_at', sa.DateTime(timezone=True), nullable=True, comment='set by an erasure under legal hold: hidden from the application role'))
    # ### end Alembic commands ###
    _run(SECURITY_SQL)


def downgrade() -> None:
    _run(DOWNGRADE_SQL)
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_column('appointments', 'blocked_at')
    op.drop_index(op.f('ix_erasure_ledger_clinic_id_decided_at'), table_name='erasure_ledger')
    op.drop_table('erasure_ledger')
    # ### end Alembic commands ###
